// Session-level errors: what goes wrong around a stream that is neither a
// stream error condition (stream_errc), a stanza error (stanza_errc), a SASL
// failure (sasl::errc), a TLS failure (tls::errc) nor a DNS failure.
#pragma once

#include <string>
#include <boost/system/error_code.hpp>

namespace xmpp {

/// Value 0 is "no error".
enum class errc {
    not_connected = 1,     ///< the operation needs a negotiated session
    already_connected,     ///< async_connect on a session that is not idle
    session_closed,        ///< the stream ended (closed by either side, or failed) before the operation completed
    timeout,               ///< a deadline passed (connect, negotiation step, IQ reply, close handshake)
    peer_closed,           ///< the peer ended the stream or the connection
    tls_required,          ///< the server offers no STARTTLS and plaintext was not explicitly allowed
    starttls_failed,       ///< the server answered <starttls/> with <failure/>
    tls_injection,         ///< bytes followed <proceed/> before the TLS handshake (RFC 6120 5.4.3.3)
    unexpected_element,    ///< an element that does not fit the protocol step
    negotiation_stuck,     ///< features left, none usable, and the session is not ready
    bind_failed,           ///< resource binding answered with an error or a bad JID
    bad_stream_header,     ///< the peer's stream header is unusable (version, namespace, id)
    invalid_argument,      ///< e.g. a stanza without the attributes the operation needs
    send_queue_full,       ///< more than session_options::max_send_queue bytes wait to be written: the peer does not read
    callback_failed,       ///< an application callback (the on_read or on_write tee hook) threw: the session ends
};

/// The category of errc; name() is "xmpp".
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// An error code with the human-readable detail that came with it: the text
/// of a stream, stanza or SASL error, a TLS library reason, a DNS server...
struct error_info {
    boost::system::error_code code;
    std::string text;
    /// "message: text", or just the message.
    std::string what() const { return text.empty() ? code.message() : code.message() + ": " + text; }
};

} // namespace xmpp

template <>
struct boost::system::is_error_code_enum<xmpp::errc> : std::true_type {};
