// Stream features (RFC 6120 4.3): the StreamFeature shape of mellium's
// xmpp.StreamFeature, as awaitable steps. A negotiator offers or uses a list of
// features; each one says which session-state bits it needs and forbids.
#pragma once

#include <any>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include <xmpp/jid.hpp>
#include <xmpp/transport.hpp>
#include <xmpp/xml/element.hpp>

namespace xmpp {

/// Session-state bits (mellium's SessionState).
enum class session_state : std::uint16_t {
    none = 0,
    secure = 1 << 0,        ///< the stream is protected by TLS
    authenticated = 1 << 1, ///< SASL (or another authentication) succeeded
    ready = 1 << 2,         ///< negotiation is over; stanzas may flow
    received = 1 << 3,      ///< this side received the stream (server side)
    input_closed = 1 << 4,  ///< the peer's stream end was read
    output_closed = 1 << 5, ///< our stream end was written
};

constexpr session_state operator|(session_state a, session_state b) noexcept {
    return static_cast<session_state>(static_cast<std::uint16_t>(a) | static_cast<std::uint16_t>(b));
}
constexpr session_state operator&(session_state a, session_state b) noexcept {
    return static_cast<session_state>(static_cast<std::uint16_t>(a) & static_cast<std::uint16_t>(b));
}
constexpr session_state operator~(session_state a) noexcept {
    return static_cast<session_state>(~static_cast<std::uint16_t>(a));
}
constexpr session_state& operator|=(session_state& a, session_state b) noexcept { return a = a | b; }
/// True when every bit of `bits` is set in `s`.
constexpr bool has_all(session_state s, session_state bits) noexcept { return (s & bits) == bits; }
/// True when any bit of `bits` is set in `s`.
constexpr bool has_any(session_state s, session_state bits) noexcept { return (s & bits) != session_state::none; }

/// The stream under negotiation, as a feature sees it. Implemented by the
/// negotiator; features never learn which transport (TCP, WebSocket) runs
/// below. Used from the session's strand only.
class negotiation_stream {
public:
    virtual ~negotiation_stream() = default;

    /// Write one element (serialized in the stream's content namespace).
    /// Throws boost::system::system_error on failure.
    virtual asio::awaitable<void> send(xml::node element) = 0;

    /// Write XML text that is already serialized (and valid) as is.
    virtual asio::awaitable<void> send_raw(std::string_view xml_text) = 0;

    /// The next top-level element from the peer. A <stream:error/> from the
    /// peer, the stream's end, bad XML or the step deadline throw
    /// boost::system::system_error (stream_errc, errc::peer_closed, errc::timeout).
    virtual asio::awaitable<xml::element> receive() = 0;

    /// Current state bits.
    virtual session_state state() const noexcept = 0;

    /// The transport now in use (for channel binding, TLS version...).
    virtual transport& current_transport() noexcept = 0;

    /// Take the transport out to wrap it (STARTTLS): throws system_error with
    /// errc::tls_injection when the peer already sent bytes past the last
    /// element, which would otherwise be read as if protected by TLS
    /// (RFC 6120 5.4.3.3). The feature returns the new transport in its
    /// negotiate_result.
    virtual std::unique_ptr<transport> take_transport() = 0;

    /// This side's address: the account's bare JID (or full, once bound).
    virtual const jid& local_address() const noexcept = 0;
    /// Record the address the server bound (RFC 6120 7.6.1).
    virtual void set_local_address(jid j) = 0;
    /// The peer's domain (the server we connect to; the JID's domainpart)
    /// in ASCII form, IDN labels as A-labels (see domain_to_ascii()): the
    /// name TLS checks the certificate against and sends as SNI.
    virtual const std::string& peer_domain() const noexcept = 0;
    /// Record the SASL mechanism that authenticated the stream (for
    /// diagnostics: session::sasl_mechanism()).
    virtual void set_auth_mechanism(std::string name) { (void)name; }
    /// True on the initiating (client) side.
    virtual bool is_initiator() const noexcept = 0;
    /// The peer's address. Receiving side: the authenticated account (bare
    /// JID, after SASL), then the bound full JID; empty before. Initiating
    /// side: the server's domain.
    virtual const jid& peer_address() const noexcept = 0;
    /// Receiving side: record who the peer is (SASL, then bind).
    virtual void set_peer_address(jid j) = 0;
};

/// What a feature's negotiate step returns.
struct negotiate_result {
    /// Bits to add to the session state (secure, authenticated, ready...).
    session_state gained = session_state::none;
    /// A transport replacing the one taken with take_transport() (STARTTLS):
    /// the stream restarts over it.
    std::unique_ptr<transport> new_transport;
    /// The stream restarts (RFC 6120 4.3.3): after TLS and after SASL.
    bool restart = false;
};

/// What a feature's parse step returns.
struct parse_result {
    /// The peer marked the feature mandatory-to-negotiate (e.g. <required/>
    /// in <starttls/>, or the feature's own rules: RFC 6120 4.3.2).
    bool required = false;
    /// Whatever negotiate() needs from the advertisement (mechanism list...).
    std::any data;
};

/// One stream feature. Implementations keep no per-stream state in the
/// object itself (the same instance may serve many sessions); per-stream data
/// travels through parse_result::data.
class stream_feature {
public:
    virtual ~stream_feature() = default;

    /// Local name and namespace of the feature's child of <stream:features>.
    virtual std::string_view name() const noexcept = 0;
    virtual std::string_view ns() const noexcept = 0;

    /// Bits that must all be set for the feature to be negotiated.
    virtual session_state necessary() const noexcept { return session_state::none; }
    /// Bits that must all be clear for the feature to be negotiated.
    virtual session_state prohibited() const noexcept { return session_state::none; }

    /// Initiating side: read the peer's advertisement of this feature (the
    /// child of <stream:features/>; its parent is reachable for features
    /// that read siblings, e.g. XEP-0440 beside SASL). Awaitable, as in
    /// mellium's Parse, so a feature may look things up before it decides.
    /// Throws system_error when the advertisement is unusable.
    virtual asio::awaitable<parse_result> parse(xml::node advertised) const = 0;

    /// Receiving side: append this feature's advertisement to `features`
    /// and return whether it is required. Awaitable, so that what is offered
    /// may depend on an asynchronous lookup. The default offers nothing.
    virtual asio::awaitable<bool> list(xml::node features, const negotiation_stream& s) const {
        (void)features; (void)s;
        co_return false;
    }

    /// Receiving side: whether `e`, an element the peer sent after our
    /// <stream:features/>, starts this feature (RFC 6120 4.3.2: the
    /// initiating entity picks). The default matches the advertisement's
    /// name and namespace (<starttls/>); SASL answers <auth/>, bind an IQ
    /// set holding <bind/>.
    virtual bool starts_with(xml::node e) const noexcept { return e.name() == name() && e.ns() == ns(); }

    /// Run the feature's protocol on `s`. Initiating side: `data` is
    /// parse_result::data. Receiving side: `data` holds the xml::element
    /// the peer started the feature with (see starts_with()). Throws
    /// system_error on failure (the negotiator then ends the stream).
    virtual asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any& data) const = 0;
};

} // namespace xmpp
