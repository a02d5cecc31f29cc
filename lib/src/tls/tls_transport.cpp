// The TLS transport: an SSL object working directly on the non-blocking
// socket, driven reactor style.  SSL_read/SSL_write/SSL_do_handshake/
// SSL_shutdown are called when the socket may be ready; on WANT_READ or
// WANT_WRITE the coroutine waits with socket.async_wait.  No record buffers
// of our own, no BIO pair: an idle connection costs the SSL object and the
// socket (BoringSSL frees its record buffers when they are empty; OpenSSL
// does with SSL_MODE_RELEASE_BUFFERS, set in context.cpp).
#include "detail.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <stdexcept>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>

#ifdef OPENSSL_IS_BORINGSSL
#include <openssl/bytestring.h>
#endif
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace xmpp::tls {

namespace {

using tcp = asio::ip::tcp;
using boost::system::system_error;

// --- The socket BIO --------------------------------------------------------
// Our own rather than SSL_set_fd: send() with MSG_NOSIGNAL (the libraries'
// socket BIO uses write(), which raises SIGPIPE on a reset connection), and
// the descriptor is read from the socket object at each call, so after
// close() the BIO fails with EBADF instead of touching a reused fd number.

int bio_fd(BIO* b) { return static_cast<tcp::socket*>(BIO_get_data(b))->native_handle(); }

int bio_read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    ssize_t n;
    do n = ::recv(bio_fd(b), out, static_cast<std::size_t>(len), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return static_cast<int>(n); // 0: the peer closed TCP
}

int bio_write(BIO* b, const char* in, int len) {
    BIO_clear_retry_flags(b);
    ssize_t n;
    do n = ::send(bio_fd(b), in, static_cast<std::size_t>(len), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; // send() does not buffer
}

const BIO_METHOD* bio_method() {
    static const BIO_METHOD* m = [] {
        BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "xmpp-socket");
        if (!bm || !BIO_meth_set_read(bm, bio_read) || !BIO_meth_set_write(bm, bio_write) ||
            !BIO_meth_set_ctrl(bm, bio_ctrl))
            throw std::bad_alloc();
        return bm;
    }();
    return m;
}

// --- Errors ------------------------------------------------------------------

struct queue_info {
    std::string text;       // every entry, for what()
    bool verify = false;    // certificate verification failed
    bool version = false;   // no common protocol version
    bool alpn = false;      // no common ALPN protocol
    bool eof = false;       // OpenSSL 3: TCP EOF without close_notify
};

queue_info drain() {
    queue_info q;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!q.text.empty()) q.text += "; ";
        q.text += buf;
        if (ERR_GET_LIB(e) != ERR_LIB_SSL) continue;
        switch (ERR_GET_REASON(e)) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED: q.verify = true; break;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
#ifdef SSL_R_NO_PROTOCOLS_AVAILABLE
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
#endif
#ifdef SSL_R_NO_SUPPORTED_VERSIONS_ENABLED
        case SSL_R_NO_SUPPORTED_VERSIONS_ENABLED:
#endif
            q.version = true;
            break;
        case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
        case SSL_R_NO_APPLICATION_PROTOCOL: q.alpn = true; break;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        case SSL_R_UNEXPECTED_EOF_WHILE_READING: q.eof = true; break;
#endif
        default: break;
        }
    }
    return q;
}

error_code sys_error(int e) { return {e, boost::system::system_category()}; }

// The error of a failed SSL_read/SSL_write/SSL_shutdown after the handshake.
error_code io_error(int ssl_error, int saved_errno) {
    const auto q = drain();
    if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0) return sys_error(saved_errno);
    // TCP EOF without close_notify: BoringSSL reports SYSCALL with an empty
    // queue, OpenSSL 3 an UNEXPECTED_EOF reason.
    if ((ssl_error == SSL_ERROR_SYSCALL && q.text.empty()) || q.eof) return errc::stream_truncated;
    return errc::protocol_error;
}

// --- The transport -----------------------------------------------------------

class tls_transport final : public transport {
public:
    tls_transport(tcp::socket sock, SSL_CTX* ctx, bool server) : sock_(std::move(sock)), server_(server) {
        if (!sock_.is_open()) throw system_error(asio::error::bad_descriptor, "TLS: socket not open");
        sock_.non_blocking(true); // SSL calls must never block
        error_code nd;            // see tcp_transport: no Nagle delays
        sock_.set_option(tcp::no_delay(true), nd);
        ERR_clear_error();
        ssl_ = SSL_new(ctx);
        if (!ssl_) throw std::bad_alloc();
        BIO* b = BIO_new(bio_method());
        if (!b) {
            SSL_free(ssl_); // no destructor after a throwing constructor
            throw std::bad_alloc();
        }
        BIO_set_data(b, &sock_); // sock_ never moves: the transport lives on the heap
        BIO_set_init(b, 1);
        SSL_set_bio(ssl_, b, b); // takes the one reference
#ifdef OPENSSL_IS_BORINGSSL
        // Free the per-connection copy of the configuration (verify
        // parameters, ALPN list, ...) once the handshake is done: less
        // memory per idle connection.  What is needed later is kept in
        // verify_peer_ or read from the SSL_CTX.
        SSL_set_shed_handshake_config(ssl_, 1);
#endif
        if (server)
            SSL_set_accept_state(ssl_);
        else
            SSL_set_connect_state(ssl_);
    }
    tls_transport(const tls_transport&) = delete;
    tls_transport& operator=(const tls_transport&) = delete;
    ~tls_transport() override { SSL_free(ssl_); } // no close_notify: shutdown() sends it

    // Client settings before the handshake: name checks, SNI, ALPN.
    void setup_client(const detail::context_state& st, const std::string& server_name) {
        // A JID domainpart may be an IP literal, IPv6 in brackets (RFC 7622 3.2).
        std::string host = server_name;
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        error_code ec;
        (void)asio::ip::make_address(host, ec);
        const bool is_ip = !ec;
        bool ok = true;
        if (is_ip) {
            // RFC 6066 3: no IP literals in SNI; match an iPAddress SAN.
            if (st.verify) ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) == 1;
        } else if (!host.empty()) {
            ok = SSL_set_tlsext_host_name(ssl_, host.c_str()) == 1; // XEP-0368: SNI = JID domain
            if (ok && st.verify) {
                // Not SSL_set1_host: it knows DNS-IDs only, and falls back to
                // the CN next to an SRV-ID.  The context's certificate
                // callback checks every XMPP identity type against this
                // (RFC 6120 13.7.2.1, context.cpp); the object lives as long
                // as the SSL.
                identity_.reference = host;
                if (identity_.reference.size() > 1 && identity_.reference.back() == '.') identity_.reference.pop_back();
                ok = SSL_set_ex_data(ssl_, detail::identity_index(), &identity_) == 1;
            }
        }
        verify_peer_ = st.verify;
        if (ok && !st.alpn_wire.empty()) // note: returns 0 on success
            ok = SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(st.alpn_wire.data()),
                                     static_cast<unsigned>(st.alpn_wire.size())) == 0;
        if (!ok) {
            auto q = drain();
            throw system_error(errc::handshake_failed, "TLS setup for '" + server_name + "': " + q.text);
        }
    }

    // Runs the handshake; throws system_error (see errc) on failure.
    asio::awaitable<void> handshake(const std::string& peer) {
        for (;;) {
            ERR_clear_error();
            errno = 0;
            const int r = SSL_do_handshake(ssl_);
            const int saved_errno = errno; // before anything else may change it
            if (r == 1) {
                quick_acks_ = !server_;
                break;
            }
            const int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_WANT_READ) {
                co_await sock_.async_wait(tcp::socket::wait_read, asio::use_awaitable);
            } else if (e == SSL_ERROR_WANT_WRITE) {
                co_await sock_.async_wait(tcp::socket::wait_write, asio::use_awaitable);
            } else {
                throw_handshake_error(e, saved_errno, peer);
            }
        }
    }

    // A TLS 1.3 server sends its session tickets after the handshake, as
    // separate writes; with Nagle on (Prosody's default) it holds the
    // second one, and its next write (the stream header) behind it, until
    // the first is ACKed, and Linux delays that ACK by up to 40 ms on a
    // connection it deems interactive.  So, from the handshake until the
    // first application data, each read that consumed no application data
    // asks for the pending ACK at once: a Prosody login went from ~48 ms to
    // ~6 ms on loopback (bench/login).  A few syscalls per connection;
    // Linux-only and advisory (errors ignored).
    void quick_ack() noexcept {
#ifdef TCP_QUICKACK
        const int one = 1;
        ::setsockopt(sock_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#endif
    }

    // Client checks after the handshake (the library enforces them too;
    // these guard against a build or a setting that does not).
    void check_client(const detail::context_state& st, const std::string& peer) {
        if (st.verify && SSL_get_verify_result(ssl_) != X509_V_OK)
            throw_handshake_error(SSL_ERROR_SSL, 0, peer, true);
        if (st.verify && !identity_.reference.empty()) {
            // Also when the certificate callback was replaced through
            // native_handle(): no application data to a wrong server.
            X509* cert = SSL_get_peer_certificate(ssl_);
            const bool ok = detail::server_identity_matches(cert, identity_.reference);
            if (!ok) identity_.presented = detail::presented_identities(cert);
            X509_free(cert);
            if (!ok)
                throw system_error(errc::hostname_mismatch, "TLS handshake with " + peer +
                                                                ": certificate does not name the server (" +
                                                                identity_.presented + ")");
        }
        if (!st.alpn_wire.empty()) {
            // XEP-0368: when ALPN is used the protocol MUST be xmpp-client;
            // a server that selects nothing (no ALPN support) is accepted.
            const unsigned char* p = nullptr;
            unsigned len = 0;
            SSL_get0_alpn_selected(ssl_, &p, &len);
            if (len > 0 && !offered(st.alpn_wire, std::string_view(reinterpret_cast<const char*>(p), len)))
                throw system_error(errc::alpn_mismatch, "TLS handshake with " + peer + ": server selected '" +
                                                            std::string(reinterpret_cast<const char*>(p), len) + "'");
        }
    }

    asio::any_io_executor get_executor() override { return sock_.get_executor(); }

    std::size_t read_some(asio::mutable_buffer buf, error_code& ec) override {
        if (buf.size() == 0) {
            ec = asio::error::invalid_argument; // 0 always comes with an error
            return 0;
        }
        if (!sock_.is_open()) {
            ec = asio::error::bad_descriptor;
            return 0;
        }
        ERR_clear_error();
        errno = 0;
        const int n = SSL_read(ssl_, buf.data(), static_cast<int>(std::min<std::size_t>(buf.size(), INT_MAX)));
        const int saved_errno = errno;
        if (n > 0) {
            ec = {};
            want_write_ = false;
            quick_acks_ = false;
            return static_cast<std::size_t>(n);
        }
        const int e = SSL_get_error(ssl_, n);
        switch (e) {
        case SSL_ERROR_WANT_READ:
            want_write_ = false;
            if (quick_acks_) quick_ack();
            ec = asio::error::would_block;
            break;
        case SSL_ERROR_WANT_WRITE: // e.g. answering a TLS 1.3 KeyUpdate
            want_write_ = true;
            ec = asio::error::would_block;
            break;
        case SSL_ERROR_ZERO_RETURN: // close_notify received
            ec = asio::error::eof;
            break;
        default: ec = io_error(e, saved_errno); break;
        }
        return 0;
    }

    asio::awaitable<void> wait_read() override {
        // Decrypted bytes already inside the SSL object: the socket may
        // never become readable for them.  (Not SSL_has_pending: it is also
        // true for the first bytes of a record still incomplete, which need
        // the socket; records are read exactly, never ahead.)
        if (SSL_pending(ssl_) > 0) co_return;
        // Wait for whatever the last SSL_read wanted (a named local: see
        // FIELD-NOTES on GCC 12 and ?: inside co_await).
        const auto what = want_write_ ? tcp::socket::wait_write : tcp::socket::wait_read;
        co_await sock_.async_wait(what, asio::use_awaitable);
    }

    asio::awaitable<void> write(std::string_view data) override {
        // Partial-write mode (context.cpp): SSL_write returns after each
        // record.  After WANT_WRITE it is retried with the same pointer and
        // length, as both libraries require.
        while (!data.empty()) {
            ERR_clear_error();
            errno = 0;
            const int len = static_cast<int>(std::min<std::size_t>(data.size(), INT_MAX));
            const int n = SSL_write(ssl_, data.data(), len);
            const int saved_errno = errno;
            if (n > 0) {
                data.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            const int e = SSL_get_error(ssl_, n);
            if (e == SSL_ERROR_WANT_WRITE) {
                co_await sock_.async_wait(tcp::socket::wait_write, asio::use_awaitable);
            } else if (e == SSL_ERROR_WANT_READ) {
                co_await sock_.async_wait(tcp::socket::wait_read, asio::use_awaitable);
            } else {
                throw system_error(io_error(e, saved_errno), "TLS write");
            }
        }
    }

    asio::awaitable<void> shutdown() override {
        for (;;) {
            ERR_clear_error();
            errno = 0;
            // 0: our close_notify is out, the peer's not seen yet (we do not
            // wait for it); 1: both.
            const int r = SSL_shutdown(ssl_);
            const int saved_errno = errno; // before anything else may change it
            if (r >= 0) break;
            const int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_WANT_WRITE) {
                co_await sock_.async_wait(tcp::socket::wait_write, asio::use_awaitable);
            } else {
                throw system_error(io_error(e, saved_errno), "TLS shutdown");
            }
        }
        sock_.shutdown(tcp::socket::shutdown_send);
    }

    void close() noexcept override {
        error_code ec;
        sock_.close(ec);
    }

    bool is_secure() const noexcept override { return true; }
    bool peer_verified() const noexcept override {
        if (!verify_peer_ || SSL_get_verify_result(ssl_) != X509_V_OK) return false;
        X509* peer = SSL_get_peer_certificate(ssl_);
        X509_free(peer);
        return peer != nullptr;
    }

    int tls_version() const noexcept override { return SSL_version(ssl_); }

    std::vector<std::uint8_t> channel_binding(std::string_view type) const override {
        if (type == "tls-exporter") return exporter();
        if (type == "tls-server-end-point") return server_end_point();
        if (type == "tls-unique") return unique();
        return {};
    }

    std::string remote_endpoint_text() const override { return detail::remote_text(sock_); }

    connection_info info() const {
        connection_info i;
        i.version = SSL_version(ssl_);
        if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_))
            if (const char* name = SSL_CIPHER_standard_name(c)) i.cipher = name;
        const unsigned char* p = nullptr;
        unsigned len = 0;
        SSL_get0_alpn_selected(ssl_, &p, &len);
        if (len > 0) i.alpn.assign(reinterpret_cast<const char*>(p), len);
        if (const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) i.server_name = sni;
        i.session_reused = SSL_session_reused(ssl_) == 1;
        i.peer_verified = peer_verified();
        return i;
    }

private:
    static bool offered(std::string_view wire, std::string_view proto) {
        for (std::size_t i = 0; i < wire.size(); i += 1u + static_cast<unsigned char>(wire[i]))
            if (wire.substr(i + 1, static_cast<unsigned char>(wire[i])) == proto) return true;
        return false;
    }

    [[noreturn]] void throw_handshake_error(int ssl_error, int saved_errno, const std::string& peer,
                                            bool verify_failed = false) {
        const auto q = drain();
        const std::string where = server_ ? "TLS handshake from " + peer : "TLS handshake with " + peer;
        if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0)
            throw system_error(sys_error(saved_errno), where);
        if (q.verify || verify_failed) {
            const long v = SSL_get_verify_result(ssl_);
            // The X.509 reason, e.g. "self signed certificate" or "hostname mismatch".
            const bool name = v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH;
            std::string text = where + ": " + X509_verify_cert_error_string(v);
            if (name && !identity_.presented.empty()) text += " (certificate names " + identity_.presented + ")";
            throw system_error(name ? errc::hostname_mismatch : errc::certificate_verify_failed, text);
        }
        if (q.version) throw system_error(errc::protocol_version, where + ": " + q.text);
        if (q.alpn) throw system_error(errc::alpn_mismatch, where + ": " + q.text);
        if ((ssl_error == SSL_ERROR_SYSCALL && q.text.empty()) || q.eof)
            throw system_error(errc::handshake_failed, where + ": connection closed by the peer");
        throw system_error(errc::handshake_failed, where + ": " + (q.text.empty() ? "unknown error" : q.text));
    }

    // RFC 9266 2: 32 bytes of exporter output with label
    // "EXPORTER-Channel-Binding" and no context.  RFC 9266 3: under TLS 1.2
    // only with the extended master secret (RFC 7627).
    std::vector<std::uint8_t> exporter() const {
        SSL* ssl = ssl_;
        if (SSL_version(ssl) < TLS1_3_VERSION && !SSL_get_extms_support(ssl)) return {};
        static constexpr char label[] = "EXPORTER-Channel-Binding";
        std::vector<std::uint8_t> out(32);
        if (SSL_export_keying_material(ssl, out.data(), out.size(), label, sizeof label - 1, nullptr, 0, 0) != 1) {
            ERR_clear_error();
            return {};
        }
        return out;
    }

    // RFC 5929 4.1: the hash of the server's certificate (DER) with the
    // hash of its signature algorithm, SHA-256 when that is MD5 or SHA-1;
    // undefined (empty) for no or several hashes (e.g. Ed25519).  The
    // client hashes the peer's certificate, the server its own.
    std::vector<std::uint8_t> server_end_point() const {
        // The server's own certificate from the SSL_CTX: the SSL's copy of
        // the configuration may have been shed.
        X509* cert = server_ ? SSL_CTX_get0_certificate(SSL_get_SSL_CTX(ssl_)) : SSL_get_peer_certificate(ssl_);
        if (!cert) return {};
        int md_nid = NID_undef, pk_nid = NID_undef;
#ifdef OPENSSL_IS_BORINGSSL
        const int sig_nid = X509_get_signature_nid(cert);
        // RSASSA-PSS names its hash in the parameters, not in the OID.
        const bool known = sig_nid == NID_rsassaPss ? (md_nid = pss_hash_nid(cert)) != NID_undef
                                                    : OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid) == 1;
#else
        // Also reads the hash parameter of RSA-PSS.
        const bool known = X509_get_signature_info(cert, &md_nid, &pk_nid, nullptr, nullptr) == 1;
#endif
        if (md_nid == NID_md5 || md_nid == NID_sha1) md_nid = NID_sha256;
        const EVP_MD* md = known && md_nid != NID_undef ? EVP_get_digestbynid(md_nid) : nullptr;
        std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
        unsigned len = 0;
        const bool ok = md && X509_digest(cert, md, out.data(), &len) == 1;
        if (!server_) X509_free(cert); // SSL_get_peer_certificate returned a reference
        ERR_clear_error();
        if (!ok) return {};
        out.resize(len);
        return out;
    }

#ifdef OPENSSL_IS_BORINGSSL
    // The hash of an RSASSA-PSS signature (RFC 4055 3.1, RFC 8017 A.2.3):
    //   RSASSA-PSS-params ::= SEQUENCE {
    //       hashAlgorithm [0] HashAlgorithm DEFAULT sha1, ... }
    // BoringSSL has no API for it.  NID_undef when malformed or unknown.
    static int pss_hash_nid(X509* cert) {
        const ASN1_BIT_STRING* sig = nullptr;
        const X509_ALGOR* alg = nullptr;
        X509_get0_signature(&sig, &alg, cert);
        int ptype = V_ASN1_UNDEF;
        const void* pval = nullptr;
        if (alg) X509_ALGOR_get0(nullptr, &ptype, &pval, alg);
        if (ptype != V_ASN1_SEQUENCE || !pval) return NID_undef; // the parameters are required
        const auto* seq = static_cast<const ASN1_STRING*>(pval);
        CBS der, params;
        CBS_init(&der, ASN1_STRING_get0_data(seq), static_cast<std::size_t>(ASN1_STRING_length(seq)));
        if (!CBS_get_asn1(&der, &params, CBS_ASN1_SEQUENCE) || CBS_len(&der) != 0) return NID_undef;
        constexpr unsigned tag0 = CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0;
        if (!CBS_peek_asn1_tag(&params, tag0)) return NID_sha1; // the DEFAULT
        CBS explicit_hash, hash_alg, oid;
        if (!CBS_get_asn1(&params, &explicit_hash, tag0) ||
            !CBS_get_asn1(&explicit_hash, &hash_alg, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&hash_alg, &oid, CBS_ASN1_OBJECT))
            return NID_undef;
        return OBJ_cbs2nid(&oid);
    }
#endif

    // RFC 5929 3.1: the first Finished message of the latest handshake: the
    // client's in a full handshake, the server's on resumption.  Not
    // defined for TLS 1.3 (RFC 8446 C.5, RFC 9266).
    // Under TLS 1.2 only with the extended master secret (RFC 7627): without
    // it a man in the middle can give two connections the same value (the
    // triple handshake attack, RFC 7627 1; RFC 9266 3 notes it).
    std::vector<std::uint8_t> unique() const {
        if (SSL_version(ssl_) >= TLS1_3_VERSION || !SSL_get_extms_support(ssl_)) return {};
        std::vector<std::uint8_t> out(64);
#ifdef OPENSSL_IS_BORINGSSL
        std::size_t len = 0;
        if (!SSL_get_tls_unique(ssl_, out.data(), &len, out.size())) len = 0;
#else
        const bool ours_first = (SSL_session_reused(ssl_) == 1) == server_;
        const std::size_t len = ours_first ? SSL_get_finished(ssl_, out.data(), out.size())
                                           : SSL_get_peer_finished(ssl_, out.data(), out.size());
#endif
        out.resize(std::min(len, out.size()));
        return out;
    }

    tcp::socket sock_;
    SSL* ssl_ = nullptr;
    bool server_;
    bool verify_peer_ = false; // client verifying the server's certificate
    detail::peer_identity identity_; // client: the reference domain (SSL ex_data)
    bool want_write_ = false;  // the last SSL_read wanted to write
    bool quick_acks_ = false;  // client, until the first application data (see quick_ack)
};

asio::awaitable<std::unique_ptr<transport>> connect_impl(tcp::socket sock, context ctx, std::string server_name) {
    if (!ctx.native_handle() || ctx.is_server())
        throw std::invalid_argument("tls::connect needs a client context");
    const auto& st = detail::context_access::get(ctx);
    if (st.verify && server_name.empty())
        throw std::invalid_argument("tls::connect: no server name to verify the certificate against");
    auto t = std::make_unique<tls_transport>(std::move(sock), st.ctx, false);
    t->setup_client(st, server_name);
    co_await t->handshake(server_name);
    t->check_client(st, server_name);
    std::unique_ptr<transport> result = std::move(t);
    co_return result;
}

asio::awaitable<std::unique_ptr<transport>> accept_impl(tcp::socket sock, context ctx) {
    if (!ctx.native_handle() || !ctx.is_server()) throw std::invalid_argument("tls::accept needs a server context");
    const auto& st = detail::context_access::get(ctx);
    auto t = std::make_unique<tls_transport>(std::move(sock), st.ctx, true);
    const std::string peer = t->remote_endpoint_text();
    co_await t->handshake(peer);
    std::unique_ptr<transport> result = std::move(t);
    co_return result;
}

tcp::socket take_socket(std::unique_ptr<transport>& plain, const char* what) {
    auto* tcp_t = dynamic_cast<detail::tcp_transport*>(plain.get());
    if (!tcp_t) throw std::invalid_argument(std::string(what) + ": not a transport of make_tcp_transport()");
    auto sock = tcp_t->release_socket();
    plain.reset();
    return sock;
}

asio::awaitable<std::unique_ptr<transport>> upgrade_connect(std::unique_ptr<transport> plain, context ctx,
                                                            std::string server_name) {
    auto sock = take_socket(plain, "tls::connect");
    auto t = co_await connect_impl(std::move(sock), std::move(ctx), std::move(server_name));
    co_return t;
}

asio::awaitable<std::unique_ptr<transport>> upgrade_accept(std::unique_ptr<transport> plain, context ctx) {
    auto sock = take_socket(plain, "tls::accept");
    auto t = co_await accept_impl(std::move(sock), std::move(ctx));
    co_return t;
}

} // namespace

// The public functions are plain functions that copy the context into the
// coroutine frame: the caller's context may be a temporary that is gone by
// the time a lazily started awaitable runs.

asio::awaitable<std::unique_ptr<transport>> connect(tcp::socket sock, const context& ctx, std::string server_name) {
    return connect_impl(std::move(sock), ctx, std::move(server_name));
}

asio::awaitable<std::unique_ptr<transport>> accept(tcp::socket sock, const context& ctx) {
    return accept_impl(std::move(sock), ctx);
}

asio::awaitable<std::unique_ptr<transport>> connect(std::unique_ptr<transport> plain, const context& ctx,
                                                    std::string server_name) {
    return upgrade_connect(std::move(plain), ctx, std::move(server_name));
}

asio::awaitable<std::unique_ptr<transport>> accept(std::unique_ptr<transport> plain, const context& ctx) {
    return upgrade_accept(std::move(plain), ctx);
}

std::optional<connection_info> info(const transport& t) {
    if (const auto* tls = dynamic_cast<const tls_transport*>(&t)) return tls->info();
    return std::nullopt;
}

} // namespace xmpp::tls
