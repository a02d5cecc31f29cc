// Cyrus SASL for PLAIN, EXTERNAL, ANONYMOUS and GSSAPI.
//
// With BoringSSL in the process, Cyrus plugins that link OpenSSL's
// libcrypto (libscram, libdigestmd5, libntlm on Debian 12) bind their
// EVP/HMAC calls partly to BoringSSL and corrupt the heap. Cyrus calls
// SASL_CB_VERIFYFILE (type SASL_VRFY_PLUGIN) before it dlopen()s each plugin
// and skips the plugin when the callback returns anything but SASL_OK
// (lib/dlopen.c, _sasl_get_plugin, 2.1.28). Our callback reads the plugin's
// ELF dynamic section and those of its dependencies, and refuses any whose
// closure names libcrypto.so* or libssl.so*. The plugin directory stays
// Cyrus's own (SASL_PATH or the compiled-in default), so nothing needs to be
// installed.
#include <xmpp/sasl.hpp>

#include "detail.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>

#include <elf.h>
#include <fcntl.h>
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
template <class Ehdr, class Phdr, class Dyn>
std::optional<elf_deps> parse_elf(int fd, std::uint64_t file_size) {
    Ehdr eh;
    if (!read_at(fd, 0, sizeof eh, file_size, &eh)) return std::nullopt;
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
    if (ident[EI_DATA] != host_data) return std::nullopt;
    if (ident[EI_CLASS] == ELFCLASS64) return parse_elf<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(fd.get(), size);
    if (ident[EI_CLASS] == ELFCLASS32) return parse_elf<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(fd.get(), size);
    return std::nullopt;
}

bool is_regular_file(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string dirname_of(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
}

// Where ld.so would find `name` for an object at `from` (ld.so(8): DT_RPATH
// when there is no DT_RUNPATH, LD_LIBRARY_PATH, DT_RUNPATH, default dirs;
// ld.so.cache is not read, its entries are in the default dirs on Debian).
std::string resolve_library(const std::string& name, const elf_deps& from, const std::string& from_path) {
    if (name.find('/') != std::string::npos) return is_regular_file(name) ? name : std::string();
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
    add({
#if defined(__x86_64__)
        "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
#elif defined(__aarch64__)
        "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
#endif
        "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"});
    for (const auto& d : dirs) {
        std::string p = d + "/" + name;
        if (is_regular_file(p)) return p;
    }
    return {};
}

// OpenSSL's libraries by their file names (libcrypto.so.3, libssl.so.1.1...).
bool is_openssl_library(std::string_view name) {
    const auto slash = name.rfind('/');
    if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
    return name.starts_with("libcrypto.so") || name.starts_with("libssl.so");
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

int cyrus_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        static sasl_callback_t global_callbacks[] = {
            {SASL_CB_VERIFYFILE, as_proc(&verify_file), nullptr},
            {SASL_CB_LOG, as_proc(&quiet_log), nullptr},
            {SASL_CB_LIST_END, nullptr, nullptr},
        };
        sasl_set_mutex(&mutex_alloc, &mutex_lock, &mutex_unlock, &mutex_free);
        // Never sasl_client_done(): other threads may still hold connections.
        init_result = sasl_client_init(global_callbacks);
    });
    return init_result;
}

error_code cyrus_error(sasl_conn_t* conn, int r) {
    const char* text = conn ? sasl_errdetail(conn) : sasl_errstring(r, nullptr, nullptr);
    return detail::make_error_with_text(errc::mechanism_error, text ? text : "Cyrus SASL error");
}

// The mechanisms make_cyrus() runs; Cyrus's SCRAM, DIGEST-MD5 and the rest
// are never named to it, so it cannot pick them.
constexpr std::string_view cyrus_allowed[] = {"PLAIN", "EXTERNAL", "ANONYMOUS", "GSSAPI"};

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
        // allowed; ANONYMOUS only when asked for by name.
        sasl_security_properties_t sp{};
        sp.min_ssf = 0;
        sp.max_ssf = 0;
        sp.maxbufsize = 0;
        sp.security_flags = (allow_plain ? 0 : SASL_SEC_NOPLAINTEXT) | (name_ == "ANONYMOUS" ? 0 : SASL_SEC_NOANONYMOUS);
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
    if (std::find(mechs.begin(), mechs.end(), name) == mechs.end())
        return ec = detail::make_error_with_text(errc::mechanism_error,
                                                 "Cyrus SASL has no plugin for " + std::string(name)),
               nullptr;
    auto m = std::make_unique<cyrus_mechanism>(std::string(name), creds, std::string(domain));
    if (!m->open(allow_plain, ec)) return nullptr;
    return m;
}

} // namespace

namespace detail {

std::optional<std::string> openssl_dependency(const std::string& path) {
    auto top = read_elf(path);
    if (!top) return std::nullopt;
    // Breadth-first over the dependency closure, each object once.
    std::deque<std::pair<std::string, elf_deps>> queue{{path, std::move(*top)}};
    std::set<std::string> seen{path};
    while (!queue.empty()) {
        auto [obj_path, deps] = std::move(queue.front());
        queue.pop_front();
        for (const auto& name : deps.needed) {
            if (is_openssl_library(name)) return name;
            auto resolved = resolve_library(name, deps, obj_path);
            if (resolved.empty() || seen.size() >= 512 || !seen.insert(resolved).second) continue;
            // An unreadable dependency stays judged by its name alone.
            if (auto d = read_elf(resolved)) queue.emplace_back(std::move(resolved), std::move(*d));
        }
    }
    return std::string();
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
                                      std::string_view domain, const options& opts, error_code& ec) {
    const bool allow_plain = tls.secure || opts.allow_plain_without_tls;
    if (name == "PLAIN" && !allow_plain) return ec = make_error_code(errc::plain_without_tls), nullptr;
    return create(name, creds, domain, allow_plain, ec);
}

std::unique_ptr<mechanism> make_cyrus(std::string_view name, const credentials& creds, const tls_state& tls,
                                      std::string_view domain, error_code& ec) {
    return make_cyrus(name, creds, tls, domain, options{}, ec);
}

} // namespace xmpp::sasl
