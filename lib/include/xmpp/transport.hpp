// The byte stream a session runs on: plain TCP, TLS over TCP, or an RFC 7395
// WebSocket (ws:// or wss://). Stream features never see which one it is.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

namespace xmpp {

namespace asio = boost::asio;
using boost::system::error_code;

/// A connected, ordered, reliable byte stream.
///
/// Reads are reactor-style: read_some() never blocks and reports
/// asio::error::would_block when nothing is ready; wait_read() waits until a
/// read_some() can make progress. That lets a session hold no read buffer
/// while it is idle (see bench/idle_sessions). Writes are whole-buffer.
///
/// All members are called from the owning session's strand only; an object
/// is not thread safe. Awaitables resume on the caller's executor. close()
/// makes every pending wait_read()/write() complete with
/// asio::error::operation_aborted; so does Asio cancellation of the awaiting
/// coroutine (the operation is then abandoned and the transport is unusable).
class transport {
public:
    virtual ~transport() = default;

    virtual asio::any_io_executor get_executor() = 0;

    /// Non-blocking read into `buf`. Returns the bytes read (> 0), or 0 with
    /// `ec` set: asio::error::would_block (nothing ready: wait_read() then
    /// retry), asio::error::eof (the peer closed; for TLS only after a
    /// close_notify), or an error.
    virtual std::size_t read_some(asio::mutable_buffer buf, error_code& ec) = 0;

    /// Completes when read_some() may make progress (it may still report
    /// would_block, e.g. after a partial TLS record).
    virtual asio::awaitable<void> wait_read() = 0;

    /// Writes all of `data`; throws boost::system::system_error on failure.
    virtual asio::awaitable<void> write(std::string_view data) = 0;

    /// Non-blocking write of what the layer below takes at once: returns the
    /// bytes written (all of `data` when the socket has room), with `ec`
    /// set to would_block when that was not all, or to another error. Lets
    /// the session write a burst's replies without a coroutine. The default
    /// writes nothing and sets operation_not_supported: use write().
    virtual std::size_t try_write(std::string_view data, error_code& ec) {
        (void)data;
        ec = asio::error::operation_not_supported;
        return 0;
    }

    /// Orderly shutdown of the sending direction: TLS close_notify, then a
    /// TCP FIN. Does not wait for the peer. Throws on failure.
    virtual asio::awaitable<void> shutdown() = 0;

    /// Closes at once; pending operations complete with operation_aborted.
    virtual void close() noexcept = 0;

    /// Confidentiality and integrity protected (TLS with a verified or
    /// explicitly unverified peer).
    virtual bool is_secure() const noexcept = 0;

    /// The peer was authenticated: its certificate chain and name were
    /// verified (false without TLS, and with tls insecure_skip_verify).
    /// Whatever sends a secret in the clear over the channel (SASL PLAIN)
    /// asks this, not is_secure().
    virtual bool peer_verified() const noexcept { return false; }

    /// Negotiated TLS protocol version (e.g. 0x0304 for TLS 1.3), 0 if none.
    virtual int tls_version() const noexcept { return 0; }

    /// Channel-binding data of the named type ("tls-exporter" RFC 9266,
    /// "tls-server-end-point" RFC 5929 4, "tls-unique" RFC 5929 3, only
    /// under TLS <= 1.2). Empty when the type is unavailable, including
    /// tls-exporter and tls-unique on TLS 1.2 without the extended master
    /// secret (RFC 7627; RFC 9266 3: such values are not unique to the
    /// connection).
    virtual std::vector<std::uint8_t> channel_binding(std::string_view type) const { (void)type; return {}; }

    /// Local and remote endpoint text, for logs ("127.0.0.1:5222").
    virtual std::string remote_endpoint_text() const { return {}; }

    // --- Message-oriented transports (RFC 7395 WebSocket) ----------------------
    //
    // Such a transport carries one top-level element per message: write()
    // sends exactly one message, read_some() never returns bytes of two
    // messages in one call, and message_complete() tells where a message
    // ends. The session then frames the stream with <open/> and <close/>
    // (urn:ietf:params:xml:ns:xmpp-framing) instead of <stream:stream>, and
    // never offers or takes STARTTLS on it.

    /// True for a message-oriented transport.
    virtual bool message_oriented() const noexcept { return false; }

    /// Message-oriented only: true when the bytes returned by the last
    /// read_some() were the last of a message.
    virtual bool message_complete() const noexcept { return false; }

    /// True when a read_some() now would return bytes already received and
    /// decoded (a message-oriented transport's read-ahead). The session's
    /// reader holds its replies back while more input is at hand.
    virtual bool input_buffered() const noexcept { return false; }

    /// Message-oriented only: sends each of `messages` as one message, in
    /// order, in as few writes of the layer below as it can. Throws as
    /// write(). The default writes them one by one.
    virtual asio::awaitable<void> write_messages(std::span<const std::string_view> messages) {
        for (auto m : messages) co_await write(m);
    }
};

} // namespace xmpp
