// Tests of lib/src/sasl/cyrus.cpp, in a process of their own: PLAIN,
// ANONYMOUS, EXTERNAL and GSSAPI through Cyrus, the plugin filter, and the
// proof that OpenSSL's libcrypto.so.3 never enters a BoringSSL process.
#include "test_catch.hpp"

#include <xmpp/sasl.hpp>

#include "sasl/detail.hpp"

#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <elf.h>
#include <fstream>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace sasl = xmpp::sasl;
using sasl::errc;
using boost::system::error_code;

namespace {

sasl::tls_state secure() {
    sasl::tls_state t;
    t.secure = true;
    t.tls_version = 0x0304;
    return t;
}

std::string basename_of(const std::string& p) { return p.substr(p.rfind('/') + 1); }
std::string dirname_of(const std::string& p) { return p.substr(0, p.rfind('/')); }

// The directory Cyrus loaded its plugins from, as its verify callback saw.
std::string plugin_dir() {
    const auto v = sasl::detail::cyrus_plugin_verdicts();
    REQUIRE_FALSE(v.empty());
    return dirname_of(v.front().path);
}

std::vector<std::string> so_files(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (auto* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n.size() > 3 && n.ends_with(".so")) out.push_back(dir + "/" + n);
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string read_maps() {
    std::ifstream f("/proc/self/maps");
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A minimal ELF64 shared object: one PT_LOAD over the whole file, a
// PT_DYNAMIC with the given DT_NEEDED entries and DT_RUNPATH.
std::string make_elf(const std::vector<std::string>& needed, const std::string& runpath) {
    std::string strtab(1, '\0');
    std::vector<Elf64_Dyn> dyn;
    for (const auto& n : needed) {
        dyn.push_back({DT_NEEDED, {strtab.size()}});
        strtab += n + '\0';
    }
    if (!runpath.empty()) {
        dyn.push_back({DT_RUNPATH, {strtab.size()}});
        strtab += runpath + '\0';
    }
    const std::size_t dyn_off = sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr);
    const std::size_t str_off = dyn_off + (dyn.size() + 3) * sizeof(Elf64_Dyn);
    dyn.push_back({DT_STRTAB, {str_off}}); // vaddr == file offset (PT_LOAD at 0)
    dyn.push_back({DT_STRSZ, {strtab.size()}});
    dyn.push_back({DT_NULL, {0}});
    const std::size_t total = str_off + strtab.size();

    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_DYN;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 2;
    Elf64_Phdr load{};
    load.p_type = PT_LOAD;
    load.p_filesz = load.p_memsz = total;
    Elf64_Phdr dynamic{};
    dynamic.p_type = PT_DYNAMIC;
    dynamic.p_offset = dynamic.p_vaddr = dyn_off;
    dynamic.p_filesz = dynamic.p_memsz = dyn.size() * sizeof(Elf64_Dyn);

    std::string out;
    out.append(reinterpret_cast<const char*>(&eh), sizeof eh);
    out.append(reinterpret_cast<const char*>(&load), sizeof load);
    out.append(reinterpret_cast<const char*>(&dynamic), sizeof dynamic);
    out.append(reinterpret_cast<const char*>(dyn.data()), dyn.size() * sizeof(Elf64_Dyn));
    out += strtab;
    REQUIRE(out.size() == total);
    return out;
}

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/xmpp-cyrus-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        path = tmpl;
    }
    ~temp_dir() {
        for (const auto& f : files) ::unlink(f.c_str());
        ::rmdir(path.c_str());
    }
    std::string write(const std::string& name, const std::string& data) {
        const std::string p = path + "/" + name;
        std::ofstream(p, std::ios::binary) << data;
        files.push_back(p);
        return p;
    }
    std::vector<std::string> files;
};

std::string run_first(sasl::mechanism& m, error_code& ec) {
    auto r = m.initial_response(ec);
    return r ? *r : std::string("<none>");
}

} // namespace

TEST_CASE("Cyrus PLAIN sends authzid NUL authcid NUL password") {
    error_code ec;
    SECTION("with an authzid") {
        auto m = sasl::make_cyrus("PLAIN", {"user", "pass", "authzid"}, secure(), "example.org", ec);
        REQUIRE(m);
        CHECK(m->name() == "PLAIN");
        CHECK(run_first(*m, ec) == std::string("authzid\0user\0pass", 17));
        REQUIRE_FALSE(ec);
        CHECK_FALSE(m->finished());
        m->finish("", ec);
        CHECK_FALSE(ec);
        CHECK(m->finished());
    }
    SECTION("without one") {
        auto m = sasl::make_cyrus("PLAIN", {"user", "pass", ""}, secure(), "example.org", ec);
        REQUIRE(m);
        CHECK(run_first(*m, ec) == std::string("\0user\0pass", 10));
        CHECK_FALSE(ec);
    }
    SECTION("a challenge after the single step is a protocol error") {
        auto m = sasl::make_cyrus("PLAIN", {"user", "pass", ""}, secure(), "example.org", ec);
        REQUIRE(m);
        run_first(*m, ec);
        m->respond("more?", ec);
        CHECK(ec == errc::bad_server_message);
    }
    SECTION("success data PLAIN does not define") {
        auto m = sasl::make_cyrus("PLAIN", {"user", "pass", ""}, secure(), "example.org", ec);
        REQUIRE(m);
        run_first(*m, ec);
        m->finish("unexpected", ec);
        CHECK(ec == errc::bad_server_message);
        CHECK_FALSE(m->finished());
    }
    SECTION("success before the exchange started") {
        auto m = sasl::make_cyrus("PLAIN", {"user", "pass", ""}, secure(), "example.org", ec);
        REQUIRE(m);
        m->finish("", ec);
        CHECK(ec == errc::unexpected_success);
    }
}

TEST_CASE("Cyrus PLAIN is refused without TLS") {
    error_code ec;
    sasl::tls_state insecure;
    CHECK_FALSE(sasl::make_cyrus("PLAIN", {"user", "pass", ""}, insecure, "example.org", ec));
    CHECK(ec == errc::plain_without_tls);

    sasl::options o;
    o.allow_plain_without_tls = true;
    auto m = sasl::make_cyrus("PLAIN", {"user", "pass", ""}, insecure, "example.org", o, ec);
    REQUIRE(m);
    CHECK(run_first(*m, ec) == std::string("\0user\0pass", 10));

    // Cyrus itself refuses too (SASL_SEC_NOPLAINTEXT in SASL_SEC_PROPS), and
    // its own text reaches the error message.
    auto raw = sasl::detail::make_cyrus_unchecked("PLAIN", {"user", "pass", ""}, "example.org", false, ec);
    REQUIRE(raw);
    auto out = raw->initial_response(ec);
    CHECK_FALSE(out);
    CHECK(ec == errc::mechanism_error);
    CHECK(ec.category() == sasl::sasl_category());
    INFO(ec.message());
    CHECK(ec.message().find("SASL(") != std::string::npos);
    CHECK(ec.message() != sasl::make_error_code(errc::mechanism_error).message());
}

TEST_CASE("Cyrus ANONYMOUS") {
    // Cyrus 2.1.28's ANONYMOUS client always sends "anonymous@<hostname>"
    // as the RFC 4505 trace and ignores the one the application gives.
    char host[256] = {};
    REQUIRE(::gethostname(host, sizeof host - 1) == 0);
    const std::string expected = std::string("anonymous@") + host;
    error_code ec;
    for (const sasl::credentials& c : {sasl::credentials{"", "", ""}, sasl::credentials{"juliet@example.org", "", ""}}) {
        auto m = sasl::make_cyrus("ANONYMOUS", c, sasl::tls_state{}, "example.org", ec);
        REQUIRE(m);
        CHECK(run_first(*m, ec) == expected);
        REQUIRE_FALSE(ec);
        m->finish("", ec);
        CHECK_FALSE(ec);
        CHECK(m->finished());
    }
}

TEST_CASE("Cyrus EXTERNAL sends the authzid, or an empty response") {
    error_code ec;
    auto m = sasl::make_cyrus("EXTERNAL", {"", "", ""}, secure(), "example.org", ec);
    REQUIRE(m);
    CHECK(run_first(*m, ec) == "");
    REQUIRE_FALSE(ec);
    m->finish("", ec);
    CHECK_FALSE(ec);
    CHECK(m->finished());

    auto a = sasl::make_cyrus("EXTERNAL", {"", "", "admin@example.org"}, secure(), "example.org", ec);
    REQUIRE(a);
    CHECK(run_first(*a, ec) == "admin@example.org");
    CHECK_FALSE(ec);
}

TEST_CASE("Cyrus GSSAPI is creatable iff its plugin is installed") {
    const std::string dir = plugin_dir();
    struct stat st{};
    const bool installed = ::stat((dir + "/libgssapiv2.so").c_str(), &st) == 0;
    error_code ec;
    auto m = sasl::make_cyrus("GSSAPI", {"user", "", ""}, secure(), "localhost", ec);
    CHECK(static_cast<bool>(m) == installed);
    if (!m) {
        CHECK(ec == errc::mechanism_error);
        return;
    }
    // No Kerberos ticket here: the start fails, cleanly and with Cyrus's text.
    auto r = m->initial_response(ec);
    if (!r) {
        CHECK(ec == errc::mechanism_error);
        INFO(ec.message());
        CHECK(ec.message().find("SASL(") != std::string::npos);
        CHECK_FALSE(m->finished());
    }
}

TEST_CASE("Cyrus is never asked for other mechanisms") {
    error_code ec;
    for (std::string_view n : {"SCRAM-SHA-1", "SCRAM-SHA-256", "DIGEST-MD5", "CRAM-MD5", "LOGIN", "NTLM", "plain", ""}) {
        INFO(n);
        CHECK_FALSE(sasl::make_cyrus(n, {"user", "pass", ""}, secure(), "example.org", ec));
        CHECK(ec == errc::invalid_mechanism);
    }
}

TEST_CASE("The plugin filter reads DT_NEEDED through the dependency closure") {
    temp_dir d;
    SECTION("direct") {
        CHECK(sasl::detail::openssl_dependency(d.write("liba.so", make_elf({"libc.so.6", "libcrypto.so.3"}, ""))) ==
              "libcrypto.so.3");
        CHECK(sasl::detail::openssl_dependency(d.write("libb.so", make_elf({"libssl.so.1.1"}, ""))) == "libssl.so.1.1");
        CHECK(sasl::detail::openssl_dependency(d.write("libc.so", make_elf({"libc.so.6"}, ""))) == "");
    }
    SECTION("through a dependency found by DT_RUNPATH $ORIGIN") {
        d.write("libinner.so", make_elf({"libcrypto.so.3"}, ""));
        const auto top = d.write("libplugin.so", make_elf({"libinner.so"}, "$ORIGIN"));
        // The plugin's own name and DT_NEEDED look harmless; its dependency is not.
        CHECK(sasl::detail::openssl_dependency(top) == "libcrypto.so.3");
        const auto clean_inner = d.write("libinner2.so", make_elf({"libc.so.6"}, ""));
        (void)clean_inner;
        CHECK(sasl::detail::openssl_dependency(d.write("libplugin2.so", make_elf({"libinner2.so"}, "$ORIGIN"))) ==
              "");
    }
    SECTION("dependency cycles end") {
        d.write("libx.so", make_elf({"liby.so"}, "$ORIGIN"));
        const auto y = d.write("liby.so", make_elf({"libx.so"}, "$ORIGIN"));
        CHECK(sasl::detail::openssl_dependency(y) == "");
    }
    SECTION("not ELF, truncated or garbage: rejected, no crash") {
        CHECK_FALSE(sasl::detail::openssl_dependency(d.write("text.so", "not an ELF file")));
        CHECK_FALSE(sasl::detail::openssl_dependency(d.path + "/missing.so"));
        const auto good = make_elf({"libcrypto.so.3"}, "");
        for (std::size_t n : {std::size_t{4}, std::size_t{64}, std::size_t{100}, good.size() - 5}) {
            INFO("truncated to " << n);
            auto r = sasl::detail::openssl_dependency(d.write("trunc" + std::to_string(n) + ".so", good.substr(0, n)));
            CHECK(r != std::optional<std::string>(""));
        }
        std::string bad = good;
        bad[sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr) + 8] = '\x7f'; // first DT_NEEDED offset far out
        CHECK_FALSE(sasl::detail::openssl_dependency(d.write("badoff.so", bad)));
    }
}

TEST_CASE("The system plugin directory holds plugins that need libcrypto.so.3, and exactly those are filtered") {
    const std::string dir = plugin_dir();
    std::set<std::string> needs_openssl, clean;
    for (const auto& f : so_files(dir)) {
        auto dep = sasl::detail::openssl_dependency(f);
        REQUIRE(dep);
        (dep->empty() ? clean : needs_openssl).insert(basename_of(f));
    }
    // Debian 12's libsasl2-modules (the FIELD-NOTES list).
    CHECK(needs_openssl == std::set<std::string>{"libdigestmd5.so", "libntlm.so", "libscram.so"});
    CHECK(clean.count("libplain.so") == 1);
    CHECK(clean.count("libanonymous.so") == 1);

    // What Cyrus was let load during its initialisation.
    std::set<std::string> loaded, refused;
    for (const auto& v : sasl::detail::cyrus_plugin_verdicts())
        (v.loaded ? loaded : refused).insert(basename_of(v.path));
    if (sasl::detail::cyrus_filters_plugins()) {
        CHECK(refused == needs_openssl);
        CHECK(loaded == clean);
    } else {
        CHECK(refused.empty());
    }
}

TEST_CASE("No OpenSSL libcrypto.so.3 in a BoringSSL process after every Cyrus mechanism ran") {
    const auto mechs = sasl::cyrus_mechanisms();
    REQUIRE_FALSE(mechs.empty());
    for (const auto& n : mechs) {
        INFO(n);
        error_code ec;
        auto m = sasl::make_cyrus(n, {"user", "pass", ""}, secure(), "localhost", ec);
        if (!m) {
            CHECK(ec == errc::invalid_mechanism); // one make_cyrus() does not run
            continue;
        }
        m->initial_response(ec); // GSSAPI fails without a ticket; the others answer
    }
    const std::string maps = read_maps();
    // The check sees real loads: Cyrus and its PLAIN plugin are mapped.
    REQUIRE(maps.find("libsasl2.so") != std::string::npos);
    REQUIRE(maps.find("libplain.so") != std::string::npos);
    const bool has = [&] {
        return std::find(mechs.begin(), mechs.end(), std::string("SCRAM-SHA-256")) != mechs.end() ||
               std::find(mechs.begin(), mechs.end(), std::string("DIGEST-MD5")) != mechs.end();
    }();
    if (sasl::detail::cyrus_filters_plugins()) {
        CHECK(maps.find("libcrypto.so.3") == std::string::npos);
        CHECK(maps.find("libscram.so") == std::string::npos);
        CHECK_FALSE(has); // Cyrus's SCRAM and DIGEST-MD5 are not even loaded
    } else {
        // OpenSSL build: libcrypto.so.3 is our own TLS library, and Cyrus's
        // plugins load unfiltered (they share it safely); we still never
        // run them.
        CHECK(maps.find("libcrypto.so.3") != std::string::npos);
    }
    CHECK(std::find(mechs.begin(), mechs.end(), std::string("PLAIN")) != mechs.end());
    CHECK(std::find(mechs.begin(), mechs.end(), std::string("EXTERNAL")) != mechs.end());
    CHECK(std::find(mechs.begin(), mechs.end(), std::string("ANONYMOUS")) != mechs.end());
}
