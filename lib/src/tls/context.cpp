// TLS contexts (SSL_CTX) for clients and servers, and the xmpp.tls error
// category.  Kept free of Asio templates: this TU compiles fast.
#include "detail.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
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
#include <openssl/x509v3.h>

#include <xmpp/jid.hpp>

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

std::string version_text(int v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%04x", static_cast<unsigned>(v) & 0xffffu);
    return buf;
}

void set_versions(SSL_CTX* ctx, int min_version, int max_version) {
    // RFC 8996 2-3: TLS 1.0 and 1.1 MUST NOT be negotiated; RFC 7590 3.1:
    // TLS 1.2 at least.  So 0x0303 (TLS 1.2) and 0x0304 (TLS 1.3) only.
    auto valid = [](int v) { return v == 0x0303 || v == 0x0304; };
    if (min_version < 0x0303 || (max_version != 0 && max_version < 0x0303))
        config_error("TLS version " + version_text(min_version < 0x0303 ? min_version : max_version) +
                     " is below TLS 1.2 (0x0303), the minimum: TLS 1.0 and 1.1 MUST NOT be negotiated"
                     " (RFC 8996, RFC 7590 3.1)");
    if (!valid(min_version) || (max_version != 0 && !valid(max_version)) ||
        (max_version != 0 && max_version < min_version))
        config_error("invalid TLS version range " + version_text(min_version) + ".." + version_text(max_version) +
                     " (versions are 0x0303 for TLS 1.2 or 0x0304 for TLS 1.3; max 0 = newest)");
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

// --- Server identity (RFC 6125 6, RFC 6120 13.7.2.1, RFC 7590 3.2) -----------

// The DER contents of the otherName type OIDs we accept.
constexpr unsigned char oid_srv_name[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07};  // 1.3.6.1.5.5.7.8.7, RFC 4985
constexpr unsigned char oid_xmpp_addr[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05}; // 1.3.6.1.5.5.7.8.5, RFC 6120 13.7.1.4

template <std::size_t N>
bool is_oid(const ASN1_OBJECT* obj, const unsigned char (&der)[N]) {
    return obj && OBJ_length(obj) == N && std::memcmp(OBJ_get0_data(obj), der, N) == 0;
}

std::string_view view_of(const ASN1_STRING* s) {
    if (!s) return {};
    return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// RFC 6125 6.4.1: DNS names compare case-insensitively in ASCII (A-labels,
// RFC 5890); one trailing dot (an absolute name) is not significant.
std::string_view without_dot(std::string_view s) {
    if (s.size() > 1 && s.back() == '.') s.remove_suffix(1);
    return s;
}

bool ascii_iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lc = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
        if (lc(static_cast<unsigned char>(a[i])) != lc(static_cast<unsigned char>(b[i]))) return false;
    }
    return true;
}

// Printable ASCII without NUL: a presented name that is not cannot match.
bool plain_ascii(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// SRV-ID (RFC 4985 2, RFC 6125 6.5.1): IA5String "_Service.Name"; for a
// client connection the service is "_xmpp-client" (RFC 6120 13.7.2.1) and
// Name the domain as A-labels.  Both compare case-insensitively, no wildcards.
bool srv_id_matches(std::string_view id, std::string_view domain) {
    static constexpr std::string_view service = "_xmpp-client.";
    return plain_ascii(id) && id.size() > service.size() && ascii_iequal(id.substr(0, service.size()), service) &&
           ascii_iequal(without_dot(id.substr(service.size())), domain);
}

// XmppAddr (RFC 6120 13.7.1.4): UTF8String holding a JID in its prepared
// (U-label) form; a server's is its bare domain.  Prepared and turned into
// A-labels to compare with the reference domain.
bool xmpp_addr_matches(std::string_view id, std::string_view domain) {
    if (id.empty() || id.find('\0') != std::string_view::npos) return false;
    error_code ec;
    const jid j = jid::parse(id, ec);
    if (ec || !j.localpart().empty() || !j.resourcepart().empty()) return false;
    const std::string ascii = domain_to_ascii(j, ec);
    return !ec && ascii_iequal(ascii, domain);
}

// CN-ID (RFC 6125 6.4.4): exact, case-insensitive, no wildcard: it is a
// last resort (and RFC 9525 drops it), so it is not widened.
bool cn_matches(X509* cert, std::string_view domain) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
        const ASN1_STRING* v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        unsigned char* utf8 = nullptr;
        const int len = ASN1_STRING_to_UTF8(&utf8, v);
        if (len < 0) continue;
        const std::string_view cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
        const bool ok = plain_ascii(cn) && ascii_iequal(without_dot(cn), domain);
        OPENSSL_free(utf8);
        if (ok) return true;
    }
    return false;
}

using general_names = std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)>;

general_names subject_alt_names(X509* cert) {
    return {static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)),
            [](GENERAL_NAMES* g) { GENERAL_NAMES_free(g); }};
}

} // namespace

namespace detail {

bool server_identity_matches(X509* cert, std::string_view domain) {
    domain = without_dot(domain);
    if (!cert || !plain_ascii(domain)) return false;
    // DNS-ID (RFC 6125 6.4.3): the library's matcher; a wildcard only as the
    // whole left-most label (BoringSSL always, OpenSSL with this flag).  Not
    // its CN fallback (see below).
    if (X509_check_host(cert, domain.data(), domain.size(),
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr) == 1)
        return true;
    bool has_identifier = false; // a DNS-ID, SRV-ID, URI-ID or XmppAddr is present
    if (auto names = subject_alt_names(cert)) {
        const auto n = sk_GENERAL_NAME_num(names.get()); // size_t in BoringSSL, int in OpenSSL
        for (decltype(+n) i = 0; i < n; ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
            if (gn->type == GEN_DNS || gn->type == GEN_URI) {
                has_identifier = true;
            } else if (gn->type == GEN_OTHERNAME) {
                const OTHERNAME* on = gn->d.otherName;
                const bool srv = is_oid(on->type_id, oid_srv_name), addr = is_oid(on->type_id, oid_xmpp_addr);
                if (!srv && !addr) continue;
                has_identifier = true;
                const ASN1_TYPE* v = on->value;
                if (srv && v && v->type == V_ASN1_IA5STRING && srv_id_matches(view_of(v->value.ia5string), domain))
                    return true;
                if (addr && v && v->type == V_ASN1_UTF8STRING &&
                    xmpp_addr_matches(view_of(v->value.utf8string), domain))
                    return true;
            }
        }
    }
    // RFC 6125 6.4.4: the CN only when no identifier of those types is
    // presented.  Not the libraries' fallback: OpenSSL 3 looks only for
    // dNSName entries, so it takes the CN next to an SRV-ID or XmppAddr;
    // Debian's BoringSSL never looks at the CN.  The same rule on both.
    return !has_identifier && cn_matches(cert, domain);
}

std::string presented_identities(X509* cert) {
    std::string out;
    int shown = 0;
    auto add = [&](std::string_view kind, std::string_view value) {
        if (shown++ == 6) out += ", ...";
        if (shown > 6) return;
        if (!out.empty()) out += ", ";
        out += kind;
        out += ':';
        for (char c : value.substr(0, 80)) out += c >= 0x20 && c < 0x7f ? c : '?';
    };
    if (!cert) return out;
    if (auto names = subject_alt_names(cert)) {
        const auto n = sk_GENERAL_NAME_num(names.get()); // size_t in BoringSSL, int in OpenSSL
        for (decltype(+n) i = 0; i < n; ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
            if (gn->type == GEN_DNS) add("DNS", view_of(gn->d.dNSName));
            if (gn->type == GEN_URI) add("URI", view_of(gn->d.uniformResourceIdentifier));
            if (gn->type == GEN_IPADD) add("IP", "(address)");
            if (gn->type == GEN_OTHERNAME && gn->d.otherName->value) {
                const ASN1_TYPE* v = gn->d.otherName->value;
                if (is_oid(gn->d.otherName->type_id, oid_srv_name) && v->type == V_ASN1_IA5STRING)
                    add("SRV", view_of(v->value.ia5string));
                if (is_oid(gn->d.otherName->type_id, oid_xmpp_addr) && v->type == V_ASN1_UTF8STRING)
                    add("XmppAddr", view_of(v->value.utf8string));
            }
        }
    }
    const X509_NAME* subject = X509_get_subject_name(cert);
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;)
        add("CN", view_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i))));
    return out.empty() ? "no names" : out;
}

int identity_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

} // namespace detail

namespace {

// The client's certificate check: the chain (X509_verify_cert), then the
// server's identity against the reference domain the connection attached to
// its SSL (tls_transport.cpp).  A mismatch fails the handshake inside the
// certificate message's processing, with X509_V_ERR_HOSTNAME_MISMATCH as the
// verify result: before the client's Finished, so before any application
// data.  An IP literal has no reference domain: X509_verify_cert checks it
// (X509_VERIFY_PARAM_set1_ip_asc).
int verify_certificate(X509_STORE_CTX* sc, void*) {
    const int ok = X509_verify_cert(sc);
    if (ok <= 0) return ok;
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(sc, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* id = ssl ? static_cast<detail::peer_identity*>(SSL_get_ex_data(ssl, detail::identity_index())) : nullptr;
    if (!id) return ok; // an SSL not made by tls::connect: only what its parameters say
    X509* leaf = X509_STORE_CTX_get0_cert(sc);
    if (detail::server_identity_matches(leaf, id->reference)) return ok;
    id->presented = detail::presented_identities(leaf);
    X509_STORE_CTX_set_error(sc, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
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
    if (s->verify) SSL_CTX_set_cert_verify_callback(ctx, verify_certificate, nullptr);
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
