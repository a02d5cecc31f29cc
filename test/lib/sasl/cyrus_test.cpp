// Tests of lib/src/sasl/cyrus.cpp, in a process of their own: PLAIN,
// EXTERNAL and GSSAPI through Cyrus (never its ANONYMOUS), the plugin
// filter and its krb5 module check, and the proof that OpenSSL's
// libcrypto.so.3 never enters a BoringSSL process, even after a GSSAPI
// attempt with a keytab.
#include "test_catch.hpp"

#include <xmpp/sasl.hpp>

#include "sasl/detail.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <elf.h>
#include <filesystem>
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
    t.peer_verified = true;
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
std::string make_elf(const std::vector<std::string>& needed, const std::string& runpath,
                     std::uint16_t machine = EM_X86_64) {
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
    eh.e_machine = machine;
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
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    // `name` may hold '/': the directories are made.
    std::string write(const std::string& name, const std::string& data) {
        const std::string p = path + "/" + name;
        std::filesystem::create_directories(std::filesystem::path(p).parent_path());
        std::ofstream(p, std::ios::binary) << data;
        return p;
    }
};

// A keytab (MIT format 0x0502) with one entry for user@EXAMPLE.ORG: enough
// for krb5 to try an AS exchange with it (KRB5_CLIENT_KTNAME).
std::string make_keytab() {
    auto u16 = [](std::uint16_t v) { return std::string{char(v >> 8), char(v & 0xff)}; };
    auto u32 = [&](std::uint32_t v) { return u16(std::uint16_t(v >> 16)) + u16(std::uint16_t(v & 0xffff)); };
    auto counted = [&](const std::string& s) { return u16(std::uint16_t(s.size())) + s; };
    std::string entry = u16(1) + counted("EXAMPLE.ORG") + counted("user");
    entry += u32(1);                                  // KRB5_NT_PRINCIPAL
    entry += u32(0);                                  // timestamp
    entry += '\x01';                                  // vno8
    entry += u16(18) + counted(std::string(32, '\0')); // aes256-cts-hmac-sha1-96, zero key
    entry += u32(1);                                  // vno
    return std::string("\x05\x02", 2) + u32(std::uint32_t(entry.size())) + entry;
}

bool cyrus_has(const std::string& name) {
    const auto mechs = sasl::cyrus_mechanisms();
    return std::find(mechs.begin(), mechs.end(), name) != mechs.end();
}

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

TEST_CASE("Cyrus PLAIN is refused without TLS and to an unverified TLS peer") {
    error_code ec;
    sasl::tls_state insecure;
    CHECK_FALSE(sasl::make_cyrus("PLAIN", {"user", "pass", ""}, insecure, "example.org", ec));
    CHECK(ec == errc::plain_without_tls);
    // A claim of verification without TLS changes nothing.
    insecure.peer_verified = true;
    CHECK_FALSE(sasl::make_cyrus("PLAIN", {"user", "pass", ""}, insecure, "example.org", ec));
    CHECK(ec == errc::plain_without_tls);

    // TLS with insecure_skip_verify: encrypted, but to whom?
    auto unverified = secure();
    unverified.peer_verified = false;
    CHECK_FALSE(sasl::make_cyrus("PLAIN", {"user", "pass", ""}, unverified, "example.org", ec));
    CHECK(ec == errc::plain_unverified_peer);
    CHECK(ec.message().find("not verified") != std::string::npos);
    // Mechanisms that reveal no password are not affected.
    CHECK(sasl::make_cyrus("EXTERNAL", {"", "", ""}, unverified, "example.org", ec));
    CHECK_FALSE(ec);

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

TEST_CASE("Cyrus's ANONYMOUS is never used: it leaks the host name") {
    // Cyrus 2.1.28's ANONYMOUS client always sends "anonymous@<hostname>"
    // as the RFC 4505 trace. Its plugin may be loaded, but make_cyrus()
    // refuses the name and select() uses the native one.
    error_code ec;
    CHECK(cyrus_has("ANONYMOUS"));
    CHECK_FALSE(sasl::make_cyrus("ANONYMOUS", {"", "", ""}, secure(), "example.org", ec));
    CHECK(ec == errc::invalid_mechanism);

    sasl::options o;
    o.allow_anonymous = true;
    auto m = sasl::select(std::vector<std::string>{"ANONYMOUS"}, {"", "", ""}, sasl::tls_state{}, o, "example.org", ec);
    REQUIRE(m);
    CHECK(m->name() == "ANONYMOUS");
    auto first = m->initial_response(ec);
    REQUIRE(first);
    char host[256] = {};
    REQUIRE(::gethostname(host, sizeof host - 1) == 0);
    CHECK(first->find(host) == std::string::npos);
    CHECK(first->empty());
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

TEST_CASE("Cyrus GSSAPI is creatable iff its plugin is installed and krb5 cannot bring libcrypto in") {
    const std::string dir = plugin_dir();
    struct stat st{};
    const bool installed = ::stat((dir + "/libgssapiv2.so").c_str(), &st) == 0;
    const std::string& blocked = sasl::detail::gssapi_unavailable_reason();
    // Only the BoringSSL build blocks; the OpenSSL build keeps GSSAPI.
    if (!sasl::detail::cyrus_filters_plugins()) CHECK(blocked.empty());
    error_code ec;
    auto m = sasl::make_cyrus("GSSAPI", {"user", "", ""}, secure(), "localhost", ec);
    CHECK(static_cast<bool>(m) == (installed && blocked.empty()));
    if (!m) {
        CHECK(ec == errc::mechanism_error);
        if (installed) {
            INFO(ec.message());
            CHECK(ec.message() == blocked);
            CHECK(ec.message().find("-Dtls=openssl") != std::string::npos);
        }
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
    for (std::string_view n : {"SCRAM-SHA-1", "SCRAM-SHA-256", "DIGEST-MD5", "CRAM-MD5", "LOGIN", "NTLM", "ANONYMOUS",
                               "GS2-KRB5", "plain", ""}) {
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
    SECTION("a dependency that cannot be found is refused, whatever its name") {
        // ld.so might find it where we do not look (or an attacker's copy):
        // what it would load cannot be judged.
        CHECK(sasl::detail::openssl_dependency(d.write("liblost.so", make_elf({"libxmpp-test-nowhere.so.1"}, ""))) ==
              "libxmpp-test-nowhere.so.1 (not found)");
        d.write("libjunk.so", "not an ELF object");
        CHECK(sasl::detail::openssl_dependency(d.write("libusesjunk.so", make_elf({"libjunk.so"}, "$ORIGIN"))) ==
              "libjunk.so (not found)");
    }
    SECTION("objects of another machine are passed over, as ld.so does") {
        // $ORIGIN/a holds an ARM build of libdep.so; $ORIGIN/b the one that
        // would load, and it needs libcrypto.
        d.write("a/libdep.so", make_elf({"libc.so.6"}, "", EM_AARCH64));
        d.write("b/libdep.so", make_elf({"libcrypto.so.3"}, ""));
        CHECK(sasl::detail::openssl_dependency(d.write("libtop.so", make_elf({"libdep.so"}, "$ORIGIN/a:$ORIGIN/b"))) ==
              "libcrypto.so.3");
        CHECK_FALSE(sasl::detail::openssl_dependency(d.path + "/a/libdep.so")); // not loadable here at all
    }
    SECTION("system libraries resolve (through ld.so.conf and the default directories)") {
        for (const char* lib : {"libc.so.6", "libkrb5.so.3", "libgssapi_krb5.so.2"}) {
            INFO(lib);
            CHECK(sasl::detail::openssl_dependency(d.write(std::string("uses-") + lib, make_elf({lib}, ""))) == "");
        }
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

TEST_CASE("The krb5 module check finds OpenSSL in plugin directories, mech configs and krb5.conf modules") {
    temp_dir d;
    using sasl::detail::kerberos_modules;
    using sasl::detail::kerberos_openssl_module;
    d.write("plugins/preauth/clean.so", make_elf({"libc.so.6"}, ""));
    d.write("plugins/README", "not a module");
    kerberos_modules m;
    m.plugin_dirs = {d.path + "/plugins"};
    CHECK(kerberos_openssl_module(m) == "");

    SECTION("a plugin two levels down") {
        const auto bad = d.write("plugins/tls/k5tls.so", make_elf({"libssl.so.3"}, ""));
        CHECK(kerberos_openssl_module(m) == bad + ", which needs libssl.so.3");
    }
    SECTION("a GSS mechanism module named in a mech config") {
        const auto bad = d.write("mech/libmech.so", make_elf({"libinner.so"}, "$ORIGIN"));
        d.write("mech/libinner.so", make_elf({"libcrypto.so.3"}, ""));
        const auto conf = d.write("mech.d/x.conf", "# comment\n\nmech_x 1.2.3.4 " + bad + " opts <type>\n");
        m.mech_configs = {d.path + "/missing.conf", conf};
        CHECK(kerberos_openssl_module(m) == bad + ", which needs libcrypto.so.3");
    }
    SECTION("a module whose dependency cannot be found") {
        const auto bad = d.write("plugins/preauth/odd.so", make_elf({"libxmpp-test-nowhere.so.2"}, ""));
        CHECK(kerberos_openssl_module(m) == bad + ", which needs libxmpp-test-nowhere.so.2 (not found)");
    }
    SECTION("krb5.conf modules, also through include") {
        const auto bad = d.write("elsewhere/otp.so", make_elf({"libcrypto.so.3"}, ""));
        d.write("inc.conf", "[plugins]\n clpreauth = {\n  module = otp2:" + bad + "\n }\n");
        const auto conf = d.write("krb5.conf", "[libdefaults]\n default_realm = X\ninclude " + d.path + "/inc.conf\n");
        ::setenv("KRB5_CONFIG", conf.c_str(), 1);
        auto sys = sasl::detail::system_kerberos_modules();
        ::unsetenv("KRB5_CONFIG");
        CHECK(std::find(sys.module_files.begin(), sys.module_files.end(), bad) != sys.module_files.end());
        m.module_files = sys.module_files;
        CHECK(kerberos_openssl_module(m) == bad + ", which needs libcrypto.so.3");
    }
}

TEST_CASE("This system's krb5 modules: Debian 12's spake.so needs libcrypto.so.3") {
    const auto sys = sasl::detail::system_kerberos_modules();
    const std::string spake = "/usr/lib/x86_64-linux-gnu/krb5/plugins/preauth/spake.so";
    struct stat st{};
    if (::stat(spake.c_str(), &st) != 0) return; // not Debian 12 with libkrb5-3
    CHECK(sasl::detail::openssl_dependency(spake) == "libcrypto.so.3");
    const auto bad = sasl::detail::kerberos_openssl_module(sys);
    INFO(bad);
    CHECK(bad.find("spake.so, which needs libcrypto.so.3") != std::string::npos);
    if (sasl::detail::cyrus_filters_plugins()) {
        CHECK(sasl::detail::gssapi_unavailable_reason().find(bad) != std::string::npos);
        CHECK(sasl::detail::gssapi_unavailable_reason().find("-Dtls=openssl") != std::string::npos);
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

    // Plugins on krb5 (GSSAPI, GS2) pass the check themselves.
    std::set<std::string> on_krb5;
    for (const auto& f : so_files(dir))
        if (sasl::detail::uses_kerberos(f)) on_krb5.insert(basename_of(f));
    CHECK(on_krb5.count("libplain.so") == 0);
    if (::access((dir + "/libgssapiv2.so").c_str(), F_OK) == 0) CHECK(on_krb5.count("libgssapiv2.so") == 1);

    // What Cyrus was let load during its initialisation.
    std::set<std::string> loaded, refused;
    for (const auto& v : sasl::detail::cyrus_plugin_verdicts()) {
        (v.loaded ? loaded : refused).insert(basename_of(v.path));
        if (!v.loaded && on_krb5.count(basename_of(v.path))) CHECK(v.reason.starts_with("MIT krb5 module "));
    }
    if (sasl::detail::cyrus_filters_plugins()) {
        // ... unless krb5's own modules would bring libcrypto in.
        auto expect_refused = needs_openssl;
        auto expect_loaded = clean;
        if (!sasl::detail::gssapi_unavailable_reason().empty())
            for (const auto& k : on_krb5) expect_refused.insert(k), expect_loaded.erase(k);
        CHECK(refused == expect_refused);
        CHECK(loaded == expect_loaded);
    } else {
        CHECK(refused.empty());
    }
}

TEST_CASE("A GSSAPI attempt with a keytab and a KDC to ask leaves libcrypto.so.3 out of a BoringSSL process") {
    // The audit's case: krb5 has what it needs to start an AS exchange
    // (a client keytab, a realm with a KDC), so it loads its preauth
    // plugins (spake.so links libcrypto.so.3). The KDC is loopback port 1,
    // where nothing listens: the exchange fails fast.
    temp_dir d;
    const auto keytab = d.write("client.keytab", make_keytab());
    const auto conf = d.write("krb5.conf", "[libdefaults]\n default_realm = EXAMPLE.ORG\n dns_lookup_kdc = false\n"
                                           " dns_lookup_realm = false\n udp_preference_limit = 1\n[realms]\n"
                                           " EXAMPLE.ORG = {\n  kdc = 127.0.0.1:1\n }\n");
    ::setenv("KRB5_CONFIG", conf.c_str(), 1);
    ::setenv("KRB5_CLIENT_KTNAME", ("FILE:" + keytab).c_str(), 1);
    ::setenv("KRB5CCNAME", "MEMORY:xmpp-cyrus-test", 1);

    error_code ec;
    auto m = sasl::make_cyrus("GSSAPI", {"user", "", ""}, secure(), "localhost", ec);
    sasl::options o;
    o.mechanisms = {"GSSAPI"};
    error_code sec;
    auto chosen = sasl::select(std::vector<std::string>{"GSSAPI"}, {"user", "", ""}, secure(), o, "localhost", sec);
    if (m) m->initial_response(ec); // what would map libcrypto.so.3 without the check
    if (chosen) chosen->initial_response(sec);
    const std::string maps = read_maps();
    ::unsetenv("KRB5_CONFIG");
    ::unsetenv("KRB5_CLIENT_KTNAME");
    ::unsetenv("KRB5CCNAME");

    if (!sasl::detail::cyrus_filters_plugins()) {
        // OpenSSL build: GSSAPI stays, and fails here only for want of a KDC.
        if (cyrus_has("GSSAPI")) {
            REQUIRE(m);
            CHECK(ec == errc::mechanism_error);
            CHECK(chosen);
        }
        return;
    }
    CHECK(maps.find("libcrypto.so.3") == std::string::npos);
    CHECK(maps.find("spake.so") == std::string::npos);
    if (sasl::detail::gssapi_unavailable_reason().empty()) return; // no krb5 module needs OpenSSL here
    CHECK_FALSE(m);
    CHECK(ec == errc::mechanism_error);
    INFO(ec.message());
    CHECK(ec.message().starts_with("GSSAPI is unavailable in this BoringSSL build: MIT krb5 could load /"));
    CHECK(ec.message().find(", which needs libcrypto.so.3") != std::string::npos);
    CHECK(ec.message().find("-Dtls=openssl") != std::string::npos);
    CHECK_FALSE(chosen);
    CHECK(sec == errc::no_acceptable_mechanism);
    CHECK(sasl::candidates(std::vector<std::string>{"GSSAPI", "PLAIN"}, {"user", "p", ""}, secure(), {}) ==
          std::vector<std::string>{"PLAIN"});
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
    error_code ec;
    auto anon = sasl::make_anonymous(); // native: no plugin at all
    anon->initial_response(ec);
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
