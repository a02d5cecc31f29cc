// TLS contexts (SSL_CTX) for clients and servers, and the xmpp.tls error
// category.  Kept free of Asio templates: this TU compiles fast.
#include "detail.hpp"

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace xmpp::tls {

namespace {

constexpr std::array<std::string_view, 8> messages{{
    "TLS handshake failed",
    "TLS certificate verification failed",
    "TLS certificate does not match the server name",
    "no TLS protocol version acceptable to both sides",
    "no ALPN protocol acceptable to both sides",
    "TLS stream truncated (connection closed without close_notify)",
    "TLS protocol error",
    "invalid TLS configuration",
}};
static_assert(static_cast<std::size_t>(errc::invalid_configuration) == messages.size());

class category_impl final : public boost::system::error_category {
public:
    // Fixed id: categories compare equal across shared objects.
    constexpr category_impl() noexcept : error_category(0x5a3c1e7d9b2f4a61ULL) {}
    const char* name() const noexcept override { return "xmpp.tls"; }
    std::string message(int ev) const override {
        if (ev == 0) return "no error";
        if (ev < 0 || static_cast<std::size_t>(ev) > messages.size())
            return "unknown TLS error " + std::to_string(ev);
        return std::string(messages[static_cast<std::size_t>(ev) - 1]);
    }
};

[[noreturn]] void config_error(const std::string& what) {
    auto queue = detail::drain_error_queue();
    throw boost::system::system_error(make_error_code(errc::invalid_configuration),
                                      "tls: " + what + (queue.empty() ? "" : " (" + queue + ")"));
}

// Frees the server's ALPN list together with its SSL_CTX, which may outlive
// the context object (every SSL holds a reference to its SSL_CTX).
void free_string(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    delete static_cast<std::string*>(ptr);
}

int alpn_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_string);
    return index;
}

// Server side of ALPN (RFC 7301 3.2): the first of our protocols the client
// offers; none in common is a fatal no_application_protocol alert.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned in_len, void*) {
    auto* ours = static_cast<const std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index()));
    if (!ours || ours->empty()) return SSL_TLSEXT_ERR_NOACK;
    const auto* p = reinterpret_cast<const unsigned char*>(ours->data());
    for (std::size_t i = 0; i < ours->size(); i += 1u + p[i]) {
        for (unsigned j = 0; j < in_len; j += 1u + in[j]) {
            if (j + 1u + in[j] > in_len) break; // malformed list: the library checks it too
            if (in[j] == p[i] && std::memcmp(in + j + 1, p + i + 1, p[i]) == 0) {
                *out = in + j + 1;
                *out_len = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

std::string alpn_wire(const std::vector<std::string>& names) {
    std::string wire;
    for (const auto& n : names) {
        // RFC 7301 3.1: opaque ProtocolName<1..2^8-1>
        if (n.empty() || n.size() > 255) config_error("invalid ALPN protocol name '" + n + "'");
        wire += static_cast<char>(n.size());
        wire += n;
    }
    return wire;
}

void set_versions(SSL_CTX* ctx, int min_version, int max_version) {
    auto valid = [](int v) { return v >= 0x0301 && v <= 0x0304; };
    if (!valid(min_version) || (max_version != 0 && !valid(max_version)) ||
        (max_version != 0 && max_version < min_version))
        config_error("invalid TLS version range " + std::to_string(min_version) + ".." +
                     std::to_string(max_version));
    if (!SSL_CTX_set_min_proto_version(ctx, static_cast<uint16_t>(min_version)) ||
        !SSL_CTX_set_max_proto_version(ctx, static_cast<uint16_t>(max_version)))
        config_error("TLS version range not supported by the library");
}

void load_cert_and_key(SSL_CTX* ctx, const std::string& cert, const std::string& key) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
        config_error("cannot load certificate chain '" + cert + "'");
    // Read the key first, so that an unreadable key and a key of another
    // certificate give different messages.
    EVP_PKEY* pkey = nullptr;
    if (BIO* f = BIO_new_file(key.c_str(), "r")) {
        pkey = PEM_read_bio_PrivateKey(f, nullptr, nullptr, nullptr);
        BIO_free(f);
    }
    if (!pkey) config_error("cannot load private key '" + key + "'");
    const int used = SSL_CTX_use_PrivateKey(ctx, pkey);
    EVP_PKEY_free(pkey);
    if (used != 1 || SSL_CTX_check_private_key(ctx) != 1)
        config_error("private key '" + key + "' does not match certificate '" + cert + "'");
}

// The system trust store as a hashed directory, looked up lazily: a CA is
// read when a chain needs it.  A bundle file (SSL_CTX_set_default_verify_paths
// reads one, e.g. $SSL_CERT_FILE or /usr/lib/ssl/cert.pem) is parsed whole
// into every context: ~0.9 MB and milliseconds for Debian's ~140 CAs.  So:
// $SSL_CERT_DIR if set (then $SSL_CERT_FILE is not read: it is the same
// store in the usual set-ups); else $SSL_CERT_FILE if set; else Debian's
// /etc/ssl/certs (OpenSSL's default dir /usr/lib/ssl/certs links there,
// BoringSSL's is that path) or the library's default directory; else the
// library's defaults.
void load_system_store(SSL_CTX* ctx) {
    auto env = [](const char* name) -> const char* {
        const char* v = std::getenv(name);
        return v && *v ? v : nullptr;
    };
    const char* dir = env(X509_get_default_cert_dir_env());
    const char* file = dir ? nullptr : env(X509_get_default_cert_file_env());
    if (!dir && !file) {
        std::error_code fec;
        for (const char* d : {"/etc/ssl/certs", X509_get_default_cert_dir()}) {
            if (std::filesystem::is_directory(d, fec)) {
                dir = d;
                break;
            }
        }
    }
    if (dir || file) {
        if (SSL_CTX_load_verify_locations(ctx, file, dir) != 1)
            config_error(std::string("cannot load the system trust store ") + (dir ? dir : file));
        return;
    }
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) config_error("cannot load the system trust store");
    ERR_clear_error(); // a missing default file is not an error
}

std::shared_ptr<detail::context_state> new_state(bool server) {
    ERR_clear_error();
    auto s = std::make_shared<detail::context_state>();
    s->server = server;
    s->ctx = SSL_CTX_new(TLS_method());
    if (!s->ctx) config_error("SSL_CTX_new failed");
    // Writes return per record, so write() can advance over a large buffer;
    // OpenSSL keeps no record buffers while idle only when asked (BoringSSL
    // always releases them).
    SSL_CTX_set_mode(s->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    return s;
}

} // namespace

const boost::system::error_category& category() noexcept {
    static constexpr category_impl cat;
    return cat;
}

namespace detail {

std::string drain_error_queue() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

} // namespace detail

context context::make_client(const client_options& opts) {
    auto s = new_state(false);
    SSL_CTX* ctx = s->ctx;
    set_versions(ctx, opts.min_version, opts.max_version);
    s->verify = !opts.insecure_skip_verify;
    SSL_CTX_set_verify(ctx, s->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    if (opts.use_system_store) load_system_store(ctx);
    if (!opts.ca_file.empty() || !opts.ca_path.empty()) {
        const char* file = opts.ca_file.empty() ? nullptr : opts.ca_file.c_str();
        const char* path = opts.ca_path.empty() ? nullptr : opts.ca_path.c_str();
        if (SSL_CTX_load_verify_locations(ctx, file, path) != 1)
            config_error("cannot load CA file '" + opts.ca_file + "' / directory '" + opts.ca_path + "'");
    }
    if (opts.client_cert_file.empty() != opts.client_key_file.empty())
        config_error("client certificate and key must be given together");
    if (!opts.client_cert_file.empty()) load_cert_and_key(ctx, opts.client_cert_file, opts.client_key_file);
    s->alpn_wire = alpn_wire(opts.alpn);
    return context(std::move(s));
}

context context::shared_client(const client_options& opts) {
    // Few distinct option sets live at once in a process: a list, pruned
    // of dead entries on each call, is enough.
    static std::mutex mutex;
    static std::vector<std::pair<client_options, std::weak_ptr<const detail::context_state>>> cache;
    std::lock_guard lk(mutex);
    std::erase_if(cache, [](const auto& e) { return e.second.expired(); });
    for (const auto& [o, weak] : cache)
        if (o == opts)
            if (auto s = weak.lock()) return context(std::move(s));
    context c = make_client(opts);
    cache.emplace_back(opts, c.state_);
    return c;
}

context context::make_server(const server_options& opts) {
    auto s = new_state(true);
    SSL_CTX* ctx = s->ctx;
    set_versions(ctx, opts.min_version, opts.max_version);
    if (opts.cert_file.empty() || opts.key_file.empty())
        config_error("a server needs a certificate and a key");
    load_cert_and_key(ctx, opts.cert_file, opts.key_file);
    // No resumption yet: no tickets to send (and for clients to keep), no
    // per-session cache growing with the number of connections.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    s->alpn_wire = alpn_wire(opts.alpn);
    if (!s->alpn_wire.empty()) {
        auto* list = new std::string(s->alpn_wire);
        if (SSL_CTX_set_ex_data(ctx, alpn_index(), list) != 1) {
            delete list;
            config_error("SSL_CTX_set_ex_data failed");
        }
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    }
    return context(std::move(s));
}

bool context::is_server() const noexcept { return state_ && state_->server; }

ssl_ctx_st* context::native_handle() const noexcept { return state_ ? state_->ctx : nullptr; }

} // namespace xmpp::tls
