// Private to lib/src/tls: the state behind tls::context, the plain TCP
// transport (so that STARTTLS can take its socket back), and error helpers.
#pragma once

#include <xmpp/tls.hpp>

#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include <openssl/ssl.h>

namespace xmpp::tls::detail {

struct context_state {
    SSL_CTX* ctx = nullptr;
    bool server = false;
    bool verify = true;     // client: verify chain and name
    std::string alpn_wire;  // RFC 7301 3.1 ProtocolNameList (length-prefixed names)

    context_state() = default;
    context_state(const context_state&) = delete;
    context_state& operator=(const context_state&) = delete;
    ~context_state() { SSL_CTX_free(ctx); }
};

struct context_access {
    static const context_state& get(const context& c) noexcept { return *c.state_; }
};

/// The reference identity of a client connection whose server name is a
/// DNS domain (RFC 6125 6.2.1), attached to its SSL as ex_data at
/// identity_index(); the certificate check (context.cpp) reads it.
struct peer_identity {
    std::string reference; ///< the domain, A-labels, no trailing dot
    std::string presented; ///< after a mismatch: the certificate's names, for the error text
};

/// The SSL ex_data index of a peer_identity.
int identity_index();

/// True when `cert` names `domain` (A-labels) as an XMPP client's server
/// (RFC 6120 13.7.2.1): a DNS-ID (RFC 6125 6.4.3: a wildcard only as the
/// whole left-most label), an SRV-ID "_xmpp-client.<domain>" (RFC 4985),
/// an XmppAddr equal to the domain (RFC 6120 13.7.1.4), or, only when the
/// certificate presents none of DNS-ID, SRV-ID, URI-ID and XmppAddr, a
/// subject CN equal to the domain (RFC 6125 6.4.4).
bool server_identity_matches(X509* cert, std::string_view domain);

/// "DNS:a.example, SRV:_xmpp-client.a.example, CN:..." for error texts.
std::string presented_identities(X509* cert);

/// Takes every error off this thread's TLS error queue, as one line of
/// text ("" when the queue was empty).
std::string drain_error_queue();

/// "host:port" of the socket's peer ("[v6]:port"), "" when unknown.
std::string remote_text(const asio::ip::tcp::socket& s);

/// A plain TCP transport.
class tcp_transport final : public transport {
public:
    explicit tcp_transport(asio::ip::tcp::socket sock);

    asio::any_io_executor get_executor() override { return sock_.get_executor(); }
    std::size_t read_some(asio::mutable_buffer buf, error_code& ec) override;
    asio::awaitable<void> wait_read() override;
    asio::awaitable<void> write(std::string_view data) override;
    std::size_t try_write(std::string_view data, error_code& ec) override;
    asio::awaitable<void> shutdown() override;
    void close() noexcept override;
    bool is_secure() const noexcept override { return false; }
    std::string remote_endpoint_text() const override { return remote_text(sock_); }

    /// Takes the socket out (STARTTLS); the transport is unusable afterwards.
    asio::ip::tcp::socket release_socket() { return std::move(sock_); }

private:
    asio::ip::tcp::socket sock_;
};

} // namespace xmpp::tls::detail
