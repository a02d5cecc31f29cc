// Cyrus SASL for PLAIN, EXTERNAL and GSSAPI.
//
// With BoringSSL in the process, Cyrus plugins that link OpenSSL's
// libcrypto (libscram, libdigestmd5, libntlm on Debian 12) bind their
// EVP/HMAC calls partly to BoringSSL and corrupt the heap. Cyrus calls
// SASL_CB_VERIFYFILE (type SASL_VRFY_PLUGIN) before it dlopen()s each plugin
// and skips the plugin when the callback returns anything but SASL_OK
// (lib/dlopen.c, _sasl_get_plugin, 2.1.28). Our callback reads the plugin's
// ELF dynamic section and those of its dependencies, and refuses any whose
// closure names libcrypto.so* or libssl.so*, or holds a dependency it cannot
// find. The plugin directory stays Cyrus's own (SASL_PATH or the compiled-in
// default), so nothing needs to be installed.
//
// GSSAPI (and GS2) plugins pass that check, but MIT krb5 and the GSS
// mechglue dlopen() modules of their own at run time (preauth/spake.so links
// libcrypto.so.3 on Debian 12; pkinit.so, k5tls.so, /etc/gss/mech.d
// modules). So a plugin on krb5 is let load only when every such module
// passes the same check; on Debian 12 spake.so always fails it, so the
// BoringSSL build has no GSSAPI (the OpenSSL build keeps it).
#include <xmpp/sasl.hpp>

#include "detail.hpp"
#include "server.hpp" // cyrus_checkpass

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h> // OPENSSL_cleanse
#include <sasl/sasl.h>

namespace xmpp::sasl {

namespace {

// --- ELF dynamic section --------------------------------------------------------

struct elf_deps {
    std::vector<std::string> needed;  // DT_NEEDED
    std::vector<std::string> rpath;   // DT_RPATH, split at ':'
    std::vector<std::string> runpath; // DT_RUNPATH, split at ':'
};

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() { if (fd_ >= 0) ::close(fd_); }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

bool read_at(int fd, std::uint64_t off, std::uint64_t size, std::uint64_t file_size, void* out) {
    if (off > file_size || size > file_size - off) return false;
    auto* p = static_cast<char*>(out);
    while (size > 0) {
        const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(off));
        if (n <= 0) return false;
        p += n;
        off += static_cast<std::uint64_t>(n);
        size -= static_cast<std::uint64_t>(n);
    }
    return true;
}

std::vector<std::string> split_path(std::string_view s) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= s.size()) {
        const std::size_t c = std::min(s.find(':', pos), s.size());
        if (c > pos) out.emplace_back(s.substr(pos, c - pos));
        pos = c + 1;
    }
    return out;
}

// Reads DT_NEEDED/DT_RPATH/DT_RUNPATH through the program headers, as the
// dynamic loader sees them (section headers may be stripped).
// This process's ELF class and machine: ld.so skips objects of any other
// (and so does the search below).
#if defined(__x86_64__)
constexpr unsigned host_machine = EM_X86_64;
#elif defined(__aarch64__)
constexpr unsigned host_machine = EM_AARCH64;
#elif defined(__i386__)
constexpr unsigned host_machine = EM_386;
#else
constexpr unsigned host_machine = EM_NONE; // unknown: not checked
#endif
constexpr unsigned char host_class = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;

template <class Ehdr, class Phdr, class Dyn>
std::optional<elf_deps> parse_elf(int fd, std::uint64_t file_size) {
    Ehdr eh;
    if (!read_at(fd, 0, sizeof eh, file_size, &eh)) return std::nullopt;
    if (host_machine != EM_NONE && eh.e_machine != host_machine) return std::nullopt;
    if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum == 0 || eh.e_phnum > 1024) return std::nullopt;
    std::vector<Phdr> ph(eh.e_phnum);
    if (!read_at(fd, eh.e_phoff, sizeof(Phdr) * ph.size(), file_size, ph.data())) return std::nullopt;

    const Phdr* dyn_ph = nullptr;
    for (const auto& p : ph)
        if (p.p_type == PT_DYNAMIC) dyn_ph = &p;
    elf_deps deps;
    if (!dyn_ph) return deps; // static object: no dependencies
    if (dyn_ph->p_filesz > 64 * 1024 * sizeof(Dyn)) return std::nullopt;
    std::vector<Dyn> dyn(dyn_ph->p_filesz / sizeof(Dyn));
    if (!read_at(fd, dyn_ph->p_offset, sizeof(Dyn) * dyn.size(), file_size, dyn.data())) return std::nullopt;

    std::uint64_t strtab = 0, strsz = 0;
    std::vector<std::uint64_t> needed, rpath, runpath;
    for (const auto& d : dyn) {
        if (d.d_tag == DT_NULL) break;
        switch (d.d_tag) {
        case DT_NEEDED: needed.push_back(d.d_un.d_val); break;
        case DT_RPATH: rpath.push_back(d.d_un.d_val); break;
        case DT_RUNPATH: runpath.push_back(d.d_un.d_val); break;
        case DT_STRTAB: strtab = d.d_un.d_ptr; break;
        case DT_STRSZ: strsz = d.d_un.d_val; break;
        default: break;
        }
    }
    if (needed.empty() && rpath.empty() && runpath.empty()) return deps;
    if (strsz == 0 || strsz > 16 * 1024 * 1024) return std::nullopt;
    // DT_STRTAB is an address: find the file offset through its PT_LOAD.
    std::optional<std::uint64_t> str_off;
    for (const auto& p : ph)
        if (p.p_type == PT_LOAD && strtab >= p.p_vaddr && strtab - p.p_vaddr < p.p_filesz)
            str_off = p.p_offset + (strtab - p.p_vaddr);
    if (!str_off) return std::nullopt;
    std::string strings(strsz, '\0');
    if (!read_at(fd, *str_off, strsz, file_size, strings.data())) return std::nullopt;
    auto str = [&](std::uint64_t off) -> std::optional<std::string> {
        if (off >= strings.size()) return std::nullopt;
        const std::size_t end = strings.find('\0', off);
        if (end == std::string::npos) return std::nullopt;
        return strings.substr(off, end - off);
    };
    for (auto off : needed) {
        auto s = str(off);
        if (!s) return std::nullopt;
        deps.needed.push_back(std::move(*s));
    }
    for (auto off : rpath)
        if (auto s = str(off)) for (auto& d : split_path(*s)) deps.rpath.push_back(std::move(d));
    for (auto off : runpath)
        if (auto s = str(off)) for (auto& d : split_path(*s)) deps.runpath.push_back(std::move(d));
    return deps;
}

std::optional<elf_deps> read_elf(const std::string& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return std::nullopt;
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    unsigned char ident[EI_NIDENT];
    if (!read_at(fd.get(), 0, sizeof ident, size, ident)) return std::nullopt;
    if (std::memcmp(ident, ELFMAG, SELFMAG) != 0) return std::nullopt;
    // Only the host byte order: a foreign object cannot be loaded here anyway.
    constexpr unsigned char host_data =
        __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
    if (ident[EI_DATA] != host_data || ident[EI_CLASS] != host_class) return std::nullopt;
    if (host_class == ELFCLASS64) return parse_elf<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(fd.get(), size);
    return parse_elf<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(fd.get(), size);
}

bool is_regular_file(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dirname_of(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Entries of `dir` (names only, sorted: a stable order for the messages).
std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (const dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") out.push_back(std::move(n));
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// The multiarch and legacy library directories (ld.so's trusted defaults on
// Debian, and where <libdir>/krb5 and <libdir>/gss may be).
const std::vector<std::string>& default_lib_dirs() {
    static const std::vector<std::string> dirs{
#if defined(__x86_64__)
        "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
#elif defined(__aarch64__)
        "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
#endif
        "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"};
    return dirs;
}

// ldconfig(8)'s configuration: one directory per line (old syntax: several,
// separated by blanks, ':' or ','; "dir=type"), "include GLOB" relative to
// the including file's directory, "hwcap" lines (ignored).
void read_ld_so_conf(const std::string& file, std::vector<std::string>& out, std::set<std::string>& seen,
                     int depth) {
    if (depth > 8 || !seen.insert(file).second) return;
    std::ifstream in(file);
    std::string raw;
    while (std::getline(in, raw)) {
        std::string_view line = raw;
        if (auto h = line.find('#'); h != std::string_view::npos) line = line.substr(0, h);
        line = trim(line);
        if (line.empty() || line.starts_with("hwcap")) continue;
        if (line.starts_with("include") && line.size() > 7 && std::isspace(static_cast<unsigned char>(line[7]))) {
            std::string pattern(trim(line.substr(8)));
            if (pattern.empty()) continue;
            if (pattern[0] != '/') pattern = dirname_of(file) + "/" + pattern;
            glob_t g{};
            if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
                for (std::size_t i = 0; i < g.gl_pathc; ++i) read_ld_so_conf(g.gl_pathv[i], out, seen, depth + 1);
            ::globfree(&g);
            continue;
        }
        std::size_t pos = 0;
        while (pos < line.size()) {
            const std::size_t end = std::min(line.find_first_of(" \t:,", pos), line.size());
            std::string_view d = line.substr(pos, end - pos);
            if (auto eq = d.find('='); eq != std::string_view::npos) d = d.substr(0, eq);
            if (!d.empty() && d[0] == '/') out.emplace_back(d);
            pos = end + 1;
        }
    }
}

// The directories ld.so.cache indexes; read once.
const std::vector<std::string>& ld_so_conf_dirs() {
    static const auto* dirs = [] {
        auto* out = new std::vector<std::string>; // reachable for the process's life
        std::set<std::string> seen;
        read_ld_so_conf("/etc/ld.so.conf", *out, seen, 0);
        return out;
    }();
    return *dirs;
}

struct resolved {
    std::string path;
    elf_deps deps;
};

// Where ld.so would find `name` for an object at `from` (ld.so(8): DT_RPATH
// when there is no DT_RUNPATH, LD_LIBRARY_PATH, DT_RUNPATH, ld.so.cache (the
// directories of /etc/ld.so.conf), the default dirs). Like ld.so, a file
// that is not a loadable ELF object of this machine is passed over.
std::optional<resolved> resolve_library(const std::string& name, const elf_deps& from, const std::string& from_path) {
    if (name.find('/') != std::string::npos) {
        if (auto d = is_regular_file(name) ? read_elf(name) : std::nullopt) return resolved{name, std::move(*d)};
        return std::nullopt;
    }
    std::vector<std::string> dirs;
    auto add = [&](const std::vector<std::string>& ds) {
        for (auto d : ds) {
            if (auto o = d.find("$ORIGIN"); o != std::string::npos) d.replace(o, 7, dirname_of(from_path));
            else if (auto o2 = d.find("${ORIGIN}"); o2 != std::string::npos) d.replace(o2, 9, dirname_of(from_path));
            dirs.push_back(std::move(d));
        }
    };
    if (from.runpath.empty()) add(from.rpath);
    if (const char* llp = ::secure_getenv("LD_LIBRARY_PATH")) add(split_path(llp));
    add(from.runpath);
    add(ld_so_conf_dirs());
    add(default_lib_dirs());
    for (const auto& d : dirs) {
        std::string p = d + "/" + name;
        if (!is_regular_file(p)) continue;
        if (auto deps = read_elf(p)) return resolved{std::move(p), std::move(*deps)};
    }
    return std::nullopt;
}

std::string_view file_name(std::string_view path) {
    const auto slash = path.rfind('/');
    if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
    return path;
}

// OpenSSL's libraries by their file names (libcrypto.so.3, libssl.so.1.1...).
bool is_openssl_library(std::string_view name) {
    name = file_name(name);
    return name.starts_with("libcrypto.so") || name.starts_with("libssl.so");
}

// MIT krb5 and GSS-API libraries (Heimdal's libgssapi.so too).
bool is_kerberos_library(std::string_view name) {
    name = file_name(name);
    return name.starts_with("libkrb5.so") || name.starts_with("libgssapi_krb5.so") ||
           name.starts_with("libgssapi.so");
}

struct closure_result {
    bool readable = false; // the top object is a loadable ELF file
    std::string match;     // the first DT_NEEDED name `matches` accepted
    std::string missing;   // the first DT_NEEDED name that was not found
};

// Breadth-first over the dependency closure of `path`, each object once;
// stops at the first name `matches` accepts or the first one not found.
template <class Pred>
closure_result walk_closure(const std::string& path, Pred matches) {
    closure_result r;
    auto top = read_elf(path);
    if (!top) return r;
    r.readable = true;
    std::deque<std::pair<std::string, elf_deps>> queue;
    queue.emplace_back(path, std::move(*top));
    std::set<std::string> seen{path};
    while (!queue.empty()) {
        auto [obj_path, deps] = std::move(queue.front());
        queue.pop_front();
        for (const auto& name : deps.needed) {
            if (matches(name)) return r.match = name, r;
            auto found = resolve_library(name, deps, obj_path);
            // Whatever ld.so would load instead cannot be judged: refused.
            if (!found) return r.missing = name, r;
            if (seen.size() >= 512 || !seen.insert(found->path).second) continue;
            queue.emplace_back(std::move(found->path), std::move(found->deps));
        }
    }
    return r;
}

// --- Modules krb5 and the GSS mechglue load themselves -------------------------------

// A krb5 profile (krb5.conf(5)): "include FILE", "includedir DIR" (its files
// named of [A-Za-z0-9_-] or ending in ".conf"), and the relations we need:
// module = name:path ([plugins]) and plugin_base_dir ([libdefaults]),
// wherever they appear (reading too much only makes the check stricter).
void read_krb5_profile(const std::string& file, std::vector<std::string>& modules, std::vector<std::string>& bases,
                       std::set<std::string>& seen, int depth) {
    if (depth > 8 || !seen.insert(file).second) return;
    std::ifstream in(file);
    std::string raw;
    while (std::getline(in, raw)) {
        std::string_view line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.starts_with("includedir") && line.size() > 10 && std::isspace(static_cast<unsigned char>(line[10]))) {
            const std::string dir(trim(line.substr(10)));
            for (const auto& n : list_dir(dir)) {
                const bool plain_name = std::all_of(n.begin(), n.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                });
                if (plain_name || n.ends_with(".conf")) read_krb5_profile(dir + "/" + n, modules, bases, seen, depth + 1);
            }
            continue;
        }
        if (line.starts_with("include") && line.size() > 7 && std::isspace(static_cast<unsigned char>(line[7]))) {
            read_krb5_profile(std::string(trim(line.substr(7))), modules, bases, seen, depth + 1);
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        const auto key = trim(line.substr(0, eq));
        const auto value = trim(line.substr(eq + 1));
        if (key == "module") {
            if (auto colon = value.find(':'); colon != std::string_view::npos)
                modules.emplace_back(trim(value.substr(colon + 1)));
        } else if (key == "plugin_base_dir" && !value.empty()) {
            bases.emplace_back(value);
        }
    }
}

// Every regular file under `dir`, a few levels deep (krb5 uses
// <base>/<interface>/<module>.so), bounded.
void collect_files(const std::string& dir, int depth, std::vector<std::string>& out) {
    if (depth > 4 || out.size() > 4096) return;
    for (const auto& n : list_dir(dir)) {
        const std::string p = dir + "/" + n;
        if (is_directory(p)) collect_files(p, depth + 1, out);
        else if (is_regular_file(p)) out.push_back(p);
    }
}

// "<path>, which needs <dep>" when the ELF object at `path` fails the
// check; "" when it passes, is missing or is not an ELF object of this
// machine (dlopen() would fail on it: nothing gets in).
std::string judge_module(const std::string& path) {
    if (!is_regular_file(path)) return {};
    auto dep = detail::openssl_dependency(path);
    if (!dep || dep->empty()) return {};
    return path + ", which needs " + *dep;
}

// The modules MIT krb5 would dlopen() here fail the check: what
// kerberos_openssl_module() says about the system's modules; "" in the
// OpenSSL build (not checked). Computed once.
const std::string& kerberos_blocker() {
    static const auto* blocker = [] {
        auto* r = new std::string; // reachable for the process's life
        if (detail::cyrus_filters_plugins()) *r = detail::kerberos_openssl_module(detail::system_kerberos_modules());
        return r;
    }();
    return *blocker;
}

// --- Cyrus initialisation ------------------------------------------------------------

std::mutex verdicts_mutex;
std::vector<detail::plugin_verdict>& verdicts() {
    static auto* v = new std::vector<detail::plugin_verdict>; // reachable for the process's life
    return *v;
}

int verify_file(void*, const char* file, sasl_verify_type_t type) {
    if (type != SASL_VRFY_PLUGIN || !file) return SASL_OK;
    detail::plugin_verdict v{file, true, {}};
    if (detail::cyrus_filters_plugins()) {
        auto dep = detail::openssl_dependency(v.path);
        if (!dep) v = {file, false, "not a readable ELF object"};
        else if (!dep->empty()) v = {file, false, *dep};
        // krb5 would dlopen() its own modules later, unchecked by Cyrus.
        else if (detail::uses_kerberos(v.path) && !kerberos_blocker().empty())
            v = {file, false, "MIT krb5 module " + kerberos_blocker()};
    }
    {
        std::lock_guard lock(verdicts_mutex);
        verdicts().push_back(v);
    }
    // Cyrus skips the plugin on anything but SASL_OK (dlopen.c).
    return v.loaded ? SASL_OK : SASL_FAIL;
}

// Cyrus would log to syslog; a library keeps quiet (errors reach the caller
// through sasl_errdetail()).
int quiet_log(void*, int, const char*) { return SASL_OK; }

using cb_proc = int (*)(void);

// sasl_callback_t stores every callback as int(*)(void); going through
// void(*)(void) states that the cast is deliberate (-Wcast-function-type).
template <class F>
cb_proc as_proc(F* f) {
    return reinterpret_cast<cb_proc>(reinterpret_cast<void (*)()>(f));
}

// Cyrus's default mutex functions do nothing; plugins such as GSSAPI rely
// on real ones when connections live on several threads.
void* mutex_alloc() { return new (std::nothrow) std::mutex; }
int mutex_lock(void* m) { static_cast<std::mutex*>(m)->lock(); return SASL_OK; }
int mutex_unlock(void* m) { static_cast<std::mutex*>(m)->unlock(); return SASL_OK; }
void mutex_free(void* m) { delete static_cast<std::mutex*>(m); }

int init_result = SASL_NOTINIT;
int server_init_result = SASL_NOTINIT;

// The callbacks of both sides: every plugin file passes our filter first.
sasl_callback_t global_callbacks[] = {
    {SASL_CB_VERIFYFILE, as_proc(&verify_file), nullptr},
    {SASL_CB_LOG, as_proc(&quiet_log), nullptr},
    {SASL_CB_LIST_END, nullptr, nullptr},
};

// Cyrus's shared initialisation (_sasl_common_init) is not thread safe:
// the client and the server side initialise one at a time.
std::mutex init_mutex;

int cyrus_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        std::lock_guard lock(init_mutex);
        // Ignored once either side is initialised (same functions anyway).
        sasl_set_mutex(&mutex_alloc, &mutex_lock, &mutex_unlock, &mutex_free);
        // Never sasl_client_done(): other threads may still hold connections.
        init_result = sasl_client_init(global_callbacks);
    });
    return init_result;
}

// The server side, for sasl_checkpass(): loads the server and auxprop
// plugins (libsasldb) through the same filter. The application name names
// Cyrus's optional configuration file (asio-xmpp.conf in its config path);
// the options that matter come from each connection's SASL_CB_GETOPT.
int cyrus_server_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        std::lock_guard lock(init_mutex);
        sasl_set_mutex(&mutex_alloc, &mutex_lock, &mutex_unlock, &mutex_free);
        // Never sasl_server_done(), as for the client side.
        server_init_result = sasl_server_init(global_callbacks, "asio-xmpp");
    });
    return server_init_result;
}

// Per-connection options of a sasldb password check.
struct checkpass_options {
    const std::string* sasldb_path;
};

int checkpass_getopt(void* ctx, const char*, const char* option, const char** result, unsigned* len) {
    const auto* o = static_cast<const checkpass_options*>(ctx);
    if (!option || !result) return SASL_BADPARAM;
    const char* v = nullptr;
    if (std::strcmp(option, "pwcheck_method") == 0) v = "auxprop";
    else if (std::strcmp(option, "auxprop_plugin") == 0) v = "sasldb";
    else if (std::strcmp(option, "sasldb_path") == 0) v = o->sasldb_path->c_str();
    if (!v) return SASL_FAIL; // Cyrus then asks its configuration file
    *result = v;
    if (len) *len = static_cast<unsigned>(std::strlen(v));
    return SASL_OK;
}

error_code cyrus_error(sasl_conn_t* conn, int r) {
    const char* text = conn ? sasl_errdetail(conn) : sasl_errstring(r, nullptr, nullptr);
    return detail::make_error_with_text(errc::mechanism_error, text ? text : "Cyrus SASL error");
}

// The mechanisms make_cyrus() runs; Cyrus's SCRAM, DIGEST-MD5 and the rest
// are never named to it, so it cannot pick them. ANONYMOUS is native: Cyrus's
// sends "anonymous@<host name>" as the RFC 4505 trace.
constexpr std::string_view cyrus_allowed[] = {"PLAIN", "EXTERNAL", "GSSAPI"};

class cyrus_mechanism final : public mechanism {
public:
    cyrus_mechanism(std::string name, const credentials& creds, std::string domain)
        : name_(std::move(name)), username_(creds.username), authzid_(creds.authzid), domain_(std::move(domain)) {
        secret_.resize(sizeof(sasl_secret_t) + creds.password.size());
        auto* s = reinterpret_cast<sasl_secret_t*>(secret_.data());
        s->len = creds.password.size();
        std::memcpy(s->data, creds.password.data(), creds.password.size());
        s->data[creds.password.size()] = 0; // secret_ has one spare byte (data[1])
    }

    ~cyrus_mechanism() override {
        if (conn_) sasl_dispose(&conn_);
        OPENSSL_cleanse(secret_.data(), secret_.size());
    }

    // Creates the Cyrus connection; false with ec on failure.
    bool open(bool allow_plain, error_code& ec) {
        callbacks_[0] = {SASL_CB_AUTHNAME, as_proc(&get_simple), this};
        callbacks_[1] = {SASL_CB_USER, as_proc(&get_simple), this};
        callbacks_[2] = {SASL_CB_PASS, as_proc(&get_secret), this};
        callbacks_[3] = {SASL_CB_LIST_END, nullptr, nullptr};
        // SASL_SUCCESS_DATA: XMPP carries additional data in <success/>
        // (RFC 6120 6.3.10), so no empty round trip is needed.
        int r = sasl_client_new("xmpp", domain_.c_str(), nullptr, nullptr, callbacks_, SASL_SUCCESS_DATA, &conn_);
        if (r != SASL_OK) {
            ec = cyrus_error(conn_, r);
            return false;
        }
        // No SASL security layer (TLS protects the stream); PLAIN only when
        // allowed; never Cyrus's ANONYMOUS.
        sasl_security_properties_t sp{};
        sp.min_ssf = 0;
        sp.max_ssf = 0;
        sp.maxbufsize = 0;
        sp.security_flags = (allow_plain ? 0 : SASL_SEC_NOPLAINTEXT) | SASL_SEC_NOANONYMOUS;
        if ((r = sasl_setprop(conn_, SASL_SEC_PROPS, &sp)) != SASL_OK) {
            ec = cyrus_error(conn_, r);
            return false;
        }
        if (name_ == "EXTERNAL") {
            // The identity the external layer (the client certificate)
            // established; Cyrus offers EXTERNAL only when it is set.
            const char* auth_id = username_.empty() ? "external" : username_.c_str();
            if ((r = sasl_setprop(conn_, SASL_AUTH_EXTERNAL, auth_id)) != SASL_OK) {
                ec = cyrus_error(conn_, r);
                return false;
            }
        }
        return true;
    }

    std::string_view name() const noexcept override { return name_; }
    bool finished() const noexcept override { return state_ == state::done; }

    std::optional<std::string> initial_response(error_code& ec) override {
        ec = {};
        if (state_ != state::start) return fail(ec, make_error_code(errc::aborted)), std::nullopt;
        const char* out = nullptr;
        unsigned out_len = 0;
        const char* chosen = nullptr;
        sasl_interact_t* interact = nullptr;
        // The list holds only our name: Cyrus cannot choose another.
        const int r = sasl_client_start(conn_, name_.c_str(), &interact, &out, &out_len, &chosen);
        if (!step_ok(r, ec)) return std::nullopt;
        state_ = state::started;
        if (!out) return std::nullopt; // server speaks first
        return std::string(out, out_len);
    }

    std::string respond(std::string_view challenge, error_code& ec) override {
        ec = {};
        // A challenge after Cyrus finished is a protocol violation.
        if (state_ != state::started || last_ == SASL_OK) return fail(ec, make_error_code(errc::bad_server_message)), std::string();
        const char* out = nullptr;
        unsigned out_len = 0;
        sasl_interact_t* interact = nullptr;
        const int r = sasl_client_step(conn_, challenge.data(), static_cast<unsigned>(challenge.size()), &interact,
                                       &out, &out_len);
        if (!step_ok(r, ec)) return {};
        return out ? std::string(out, out_len) : std::string();
    }

    void finish(std::string_view success_data, error_code& ec) override {
        ec = {};
        if (state_ == state::failed) return fail(ec, make_error_code(errc::aborted));
        if (state_ != state::started) return fail(ec, make_error_code(errc::unexpected_success));
        if (last_ == SASL_OK) {
            // Cyrus has nothing left to check; data it did not ask for is
            // not something to ignore silently.
            if (!success_data.empty()) return fail(ec, make_error_code(errc::bad_server_message));
            state_ = state::done;
            return;
        }
        // Additional data with success (RFC 6120 6.3.10): Cyrus's last step.
        const char* out = nullptr;
        unsigned out_len = 0;
        sasl_interact_t* interact = nullptr;
        const int r = sasl_client_step(conn_, success_data.data(), static_cast<unsigned>(success_data.size()),
                                       &interact, &out, &out_len);
        if (!step_ok(r, ec)) return;
        // Still wanting to talk, or with something to say: success came early.
        if (r != SASL_OK || out_len != 0) return fail(ec, make_error_code(errc::unexpected_success));
        state_ = state::done;
    }

private:
    enum class state { start, started, done, failed };

    void fail(error_code& ec, error_code e) {
        ec = e;
        state_ = state::failed;
    }

    bool step_ok(int r, error_code& ec) {
        if (r == SASL_OK || r == SASL_CONTINUE) {
            last_ = r;
            return true;
        }
        if (r == SASL_INTERACT) // every callback is supplied: should not happen
            fail(ec, detail::make_error_with_text(errc::mechanism_error,
                                                  "Cyrus SASL asked for user interaction"));
        else
            fail(ec, cyrus_error(conn_, r));
        return false;
    }

    static int get_simple(void* ctx, int id, const char** result, unsigned* len) {
        auto* self = static_cast<cyrus_mechanism*>(ctx);
        if (!result) return SASL_BADPARAM;
        const std::string* s = nullptr;
        if (id == SASL_CB_AUTHNAME) s = &self->username_;
        else if (id == SASL_CB_USER) s = &self->authzid_;
        else return SASL_BADPARAM;
        *result = s->c_str();
        if (len) *len = static_cast<unsigned>(s->size());
        return SASL_OK;
    }

    static int get_secret(sasl_conn_t*, void* ctx, int id, sasl_secret_t** psecret) {
        auto* self = static_cast<cyrus_mechanism*>(ctx);
        if (id != SASL_CB_PASS || !psecret) return SASL_BADPARAM;
        *psecret = reinterpret_cast<sasl_secret_t*>(self->secret_.data());
        return SASL_OK;
    }

    std::string name_;
    std::string username_;
    std::string authzid_;
    std::string domain_;
    std::vector<unsigned char> secret_; // a sasl_secret_t
    sasl_callback_t callbacks_[4]{};
    sasl_conn_t* conn_ = nullptr;
    int last_ = SASL_NOTINIT;
    state state_ = state::start;
};

std::unique_ptr<mechanism> create(std::string_view name, const credentials& creds, std::string_view domain,
                                  bool allow_plain, error_code& ec) {
    ec = {};
    if (std::find(std::begin(cyrus_allowed), std::end(cyrus_allowed), name) == std::end(cyrus_allowed))
        return ec = make_error_code(errc::invalid_mechanism), nullptr;
    if (const int r = cyrus_init(); r != SASL_OK) return ec = cyrus_error(nullptr, r), nullptr;
    const auto mechs = cyrus_mechanisms();
    if (std::find(mechs.begin(), mechs.end(), name) == mechs.end()) {
        if (name == "GSSAPI" && !detail::gssapi_unavailable_reason().empty())
            return ec = detail::make_error_with_text(errc::mechanism_error, detail::gssapi_unavailable_reason()),
                   nullptr;
        return ec = detail::make_error_with_text(errc::mechanism_error,
                                                 "Cyrus SASL has no plugin for " + std::string(name)),
               nullptr;
    }
    auto m = std::make_unique<cyrus_mechanism>(std::string(name), creds, std::string(domain));
    if (!m->open(allow_plain, ec)) return nullptr;
    return m;
}

} // namespace

namespace detail {

bool cyrus_checkpass(const std::string& sasldb_path, const std::string& domain, std::string_view user,
                     std::string_view password, error_code& ec) {
    ec = {};
    auto unavailable = [&](std::string text) {
        ec = detail::make_error_with_text(errc::temporary_auth_failure, "Cyrus SASL: " + text);
        return false;
    };
    // Cyrus would report a missing file like an unknown user: say it.
    if (sasldb_path.empty() || ::access(sasldb_path.c_str(), R_OK) != 0)
        return unavailable("cannot read the sasldb file '" + sasldb_path + "'");
    if (user.find('\0') != std::string_view::npos || password.find('\0') != std::string_view::npos) return false;
    if (const int r = cyrus_server_init(); r != SASL_OK)
        return unavailable(sasl_errstring(r, nullptr, nullptr));
    checkpass_options opts{&sasldb_path};
    sasl_callback_t callbacks[] = {
        {SASL_CB_GETOPT, as_proc(&checkpass_getopt), &opts},
        {SASL_CB_LIST_END, nullptr, nullptr},
    };
    sasl_conn_t* conn = nullptr;
    // user_realm = our domain: sasldb keys are user@realm (saslpasswd2 -u).
    int r = sasl_server_new("xmpp", domain.c_str(), domain.c_str(), nullptr, nullptr, callbacks, 0, &conn);
    if (r != SASL_OK) {
        const char* d = conn ? sasl_errdetail(conn) : sasl_errstring(r, nullptr, nullptr);
        std::string text = d ? d : "sasl_server_new failed";
        if (conn) sasl_dispose(&conn);
        return unavailable(text);
    }
    r = sasl_checkpass(conn, user.data(), static_cast<unsigned>(user.size()), password.data(),
                       static_cast<unsigned>(password.size()));
    std::string detail_text;
    if (r != SASL_OK)
        if (const char* d = sasl_errdetail(conn)) detail_text = d;
    sasl_dispose(&conn);
    switch (r) {
    case SASL_OK: return true;
    case SASL_BADAUTH:  // wrong password
    case SASL_NOUSER:   // no such user in the realm
    case SASL_NOVERIFY: // the user has no password
    case SASL_NOAUTHZ:
    case SASL_DISABLED: return false;
    default: return unavailable(detail_text);
    }
}

std::optional<std::string> openssl_dependency(const std::string& path) {
    const auto r = walk_closure(path, [](std::string_view n) { return is_openssl_library(n); });
    if (!r.readable) return std::nullopt;
    if (!r.match.empty()) return r.match;
    if (!r.missing.empty()) return r.missing + " (not found)";
    return std::string();
}

bool uses_kerberos(const std::string& path) {
    return !walk_closure(path, [](std::string_view n) { return is_kerberos_library(n); }).match.empty();
}

kerberos_modules system_kerberos_modules() {
    kerberos_modules m;
    // krb5's default plugin_base_dir is <libdir>/krb5/plugins. Canonical
    // names: /lib is /usr/lib on a merged-/usr system.
    std::set<std::string> canonical;
    for (const auto& d : default_lib_dirs()) {
        char* real = ::realpath((d + "/krb5/plugins").c_str(), nullptr);
        if (!real) continue;
        const std::string dir = real;
        std::free(real);
        if (is_directory(dir) && canonical.insert(dir).second) m.plugin_dirs.push_back(dir);
    }
    std::vector<std::string> profiles;
    if (const char* env = ::secure_getenv("KRB5_CONFIG")) profiles = split_path(env);
    else profiles = {"/etc/krb5.conf"};
    std::vector<std::string> modules, bases;
    std::set<std::string> seen;
    for (const auto& f : profiles) read_krb5_profile(f, modules, bases, seen, 0);
    for (auto& b : bases) m.plugin_dirs.push_back(std::move(b));
    // module = name:path, a relative path being relative to plugin_base_dir.
    for (auto& mod : modules) {
        if (mod.empty()) continue;
        if (mod[0] == '/') m.module_files.push_back(std::move(mod));
        else for (const auto& d : m.plugin_dirs) m.module_files.push_back(d + "/" + mod);
    }
    // The mechglue reads /etc/gss/mech, then /etc/gss/mech.d/*.conf, and
    // $GSS_MECH_CONFIG when not setuid (MIT g_initialize.c).
    m.mech_configs.push_back("/etc/gss/mech");
    for (const auto& n : list_dir("/etc/gss/mech.d"))
        if (n.ends_with(".conf")) m.mech_configs.push_back("/etc/gss/mech.d/" + n);
    if (const char* env = ::secure_getenv("GSS_MECH_CONFIG")) m.mech_configs.emplace_back(env);
    return m;
}

std::string kerberos_openssl_module(const kerberos_modules& m) {
    for (const auto& dir : m.plugin_dirs) {
        std::vector<std::string> files;
        collect_files(dir, 0, files);
        for (const auto& f : files)
            if (auto bad = judge_module(f); !bad.empty()) return bad;
    }
    for (const auto& f : m.module_files)
        if (auto bad = judge_module(f); !bad.empty()) return bad;
    // "name oid path [options]"; a relative path is under <libdir>/gss/.
    for (const auto& conf : m.mech_configs) {
        std::ifstream in(conf);
        std::string raw;
        while (std::getline(in, raw)) {
            std::string_view line = trim(raw);
            if (line.empty() || line[0] == '#') continue;
            std::vector<std::string_view> fields;
            std::size_t pos = 0;
            while (pos < line.size() && fields.size() < 3) {
                const std::size_t start = line.find_first_not_of(" \t", pos);
                if (start == std::string_view::npos) break;
                const std::size_t end = std::min(line.find_first_of(" \t", start), line.size());
                fields.push_back(line.substr(start, end - start));
                pos = end;
            }
            if (fields.size() < 3) continue;
            const std::string path(fields[2]);
            if (path[0] == '/') {
                if (auto bad = judge_module(path); !bad.empty()) return bad;
            } else {
                for (const auto& d : default_lib_dirs())
                    if (auto bad = judge_module(d + "/gss/" + path); !bad.empty()) return bad;
            }
        }
    }
    return {};
}

const std::string& gssapi_unavailable_reason() {
    static const auto* reason = [] {
        auto* r = new std::string; // reachable for the process's life
        if (!kerberos_blocker().empty())
            *r = "GSSAPI is unavailable in this BoringSSL build: MIT krb5 could load " + kerberos_blocker() +
                 "; OpenSSL's libcrypto clashes with BoringSSL in one process. Build with -Dtls=openssl to use "
                 "GSSAPI";
        return r;
    }();
    return *reason;
}

bool cyrus_filters_plugins() noexcept {
#if defined(XMPP_TLS_BORINGSSL) && XMPP_TLS_BORINGSSL
    return true;
#else
    return false; // OpenSSL's libcrypto is already ours: plugins share it safely
#endif
}

std::vector<plugin_verdict> cyrus_plugin_verdicts() {
    cyrus_init();
    std::lock_guard lock(verdicts_mutex);
    return verdicts();
}

std::unique_ptr<mechanism> make_cyrus_unchecked(std::string_view name, const credentials& creds,
                                                std::string_view domain, bool allow_plain, error_code& ec) {
    return create(name, creds, domain, allow_plain, ec);
}

} // namespace detail

std::vector<std::string> cyrus_mechanisms() {
    std::vector<std::string> out;
    if (cyrus_init() != SASL_OK) return out;
    if (const char** list = sasl_global_listmech())
        for (; *list; ++list) out.emplace_back(*list);
    return out;
}

std::unique_ptr<mechanism> make_cyrus(std::string_view name, const credentials& creds, const tls_state& tls,
                                      std::string_view domain, error_code& ec) {
    // PLAIN gives the password to the peer (RFC 4616 6): never in the clear,
    // never to a peer TLS did not authenticate.
    if (name == "PLAIN" && !tls.secure) return ec = make_error_code(errc::plain_without_tls), nullptr;
    if (name == "PLAIN" && !tls.peer_verified) return ec = make_error_code(errc::plain_unverified_peer), nullptr;
    return create(name, creds, domain, tls.secure && tls.peer_verified, ec);
}

} // namespace xmpp::sasl
