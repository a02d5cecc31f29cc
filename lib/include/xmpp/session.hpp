// xmpp::session: a client XMPP session over TCP, STARTTLS or direct TLS.
//
//     xmpp::session s(io.get_executor(), {.address = xmpp::jid::parse("alice@example.org"),
//                                         .password = "secret"});
//     co_await s.async_connect(asio::use_awaitable);
//     auto reply = co_await s.async_send_iq(xmpp::make_iq(xmpp::iq_type::get, "example.org",
//                                                         "ping", "urn:xmpp:ping"), asio::use_awaitable);
//     co_await s.async_close(asio::use_awaitable);
//
// Every operation is an Asio asynchronous operation, generic over the
// completion token (use_awaitable, deferred, callbacks, use_future...), and
// runs on the session's own strand. The work is compiled once, in the
// library: these templates only type-erase the handler.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>

#include <xmpp/error.hpp>
#include <xmpp/jid.hpp>
#include <xmpp/net/resolver.hpp>
#include <xmpp/sasl.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stream_feature.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/xml/element.hpp>
#include <xmpp/xml/framer.hpp>

namespace xmpp {

class session;

namespace detail { class session_impl; }

/// An element the session received, with what a handler needs to answer it.
class incoming {
public:
    incoming(session& s, xml::element e) : session_(&s), element_(std::move(e)) {}
    /// The received top-level element (a stanza, or another element such as
    /// a stream-management request). Owned by this object.
    xml::node element() const noexcept { return element_.root(); }
    /// classify(element()).
    stanza_kind kind() const noexcept { return classify(element()); }
    /// The session it came on.
    session& get_session() const noexcept { return *session_; }
    /// Moves the element out.
    xml::element release() noexcept { return std::move(element_); }

private:
    session* session_;
    xml::element element_;
};

/// Handles one incoming element. Returns true when it handled it; an IQ get
/// or set no handler answers gets a service-unavailable error
/// (RFC 6120 8.4). Each call runs as its own coroutine on the session's
/// strand, so a handler may co_await async_send_iq() (or anything else)
/// without blocking the reading of further elements. An exception thrown by
/// a handler for an IQ get/set is answered with internal-server-error.
using stanza_handler = std::function<asio::awaitable<bool>(incoming)>;

/// Settings of a client session.
struct session_options {
    /// The account: a bare JID, or a full JID to request that resource.
    jid address;
    std::string password;

    /// Where to connect. Empty host: DNS SRV of the JID's domain
    /// (_xmpps-client._tcp and _xmpp-client._tcp, XEP-0368 / RFC 6120 3.2),
    /// falling back to the domain on port 5222.
    std::string host;
    /// Port of `host`; 0 = 5222 (5223 with direct_tls).
    std::uint16_t port = 0;
    /// With `host`: TLS from the first byte (XEP-0368), ALPN xmpp-client.
    bool direct_tls = false;
    /// DNS servers and deadlines (c-ares, driven by the session's executor).
    net::resolver_options dns;

    /// TLS settings: verification against the JID's domain is on unless
    /// tls.insecure_skip_verify; TLS 1.2 minimum; custom CA file or path.
    tls::client_options tls;
    /// Go on without TLS when the server offers none. Off by default; PLAIN
    /// stays refused on such a stream unless sasl.allow_plain_without_tls.
    bool allow_plaintext = false;
    /// Mechanism choice (see sasl::select()).
    sasl::options sasl;
    /// Authorization identity (RFC 6120 6.3.8); usually empty.
    std::string authzid;

    /// Parser limits (largest element, depth, attributes).
    xml::limits limits;
    /// The whole of async_connect: DNS, TCP, TLS, negotiation.
    std::chrono::milliseconds connect_timeout{30000};
    /// Each wait for the server during negotiation.
    std::chrono::milliseconds step_timeout{15000};
    /// Default deadline of async_send_iq.
    std::chrono::milliseconds iq_timeout{30000};
    /// How long async_close waits for the server's closing tag.
    std::chrono::milliseconds close_timeout{5000};
    /// Bytes read per read_some.
    std::size_t read_size = 4096;
    /// Most bytes that may wait in the outbound queue (beside the write in
    /// progress). Past it, async_send and async_send_iq complete with
    /// errc::send_queue_full (the session goes on), and an automatic error
    /// reply the session owes the server ends the session with that code:
    /// a server that floods requests and does not read the answers.
    std::size_t max_send_queue = 1024 * 1024;

    /// Features negotiated after the built-in STARTTLS, SASL and bind.
    std::vector<std::shared_ptr<const stream_feature>> extra_features;

    /// Tee hooks for an XML console: every chunk of bytes read or written,
    /// after TLS. Called on the session's strand; must not block.
    std::function<void(std::string_view)> on_read;
    std::function<void(std::string_view)> on_write;
    /// Called once when a connected session ends, with the reason
    /// (errc::session_closed after async_close). On the session's strand.
    std::function<void(const error_info&)> on_closed;
};

/// A client session: connection, negotiation, stanza I/O.
///
/// Thread safety: the asynchronous operations may be started from any
/// thread; they run on the session's strand. set_handler() and the
/// accessors must not race with a running connect. Destroying the session
/// closes the connection at once; pending operations then complete with
/// errc::session_closed.
class session {
public:
    using executor_type = asio::any_io_executor;

    /// A session whose work runs on a new strand of `ex`.
    session(asio::any_io_executor ex, session_options opts);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    /// The session's strand.
    executor_type get_executor() const noexcept;

    /// Called for each incoming element except matched IQ replies. Set it
    /// before async_connect.
    void set_handler(stanza_handler h);

    /// Dial (DNS SRV or the explicit host), TLS, STARTTLS, SASL, bind.
    ///
    /// Completion: void(error_code). Errors carry their detail in
    /// last_error(): tls::errc (certificate...), sasl::errc (wrong password:
    /// not_authorized), stream_errc, errc::tls_required, errc::timeout
    /// (options.connect_timeout), DNS and socket errors.
    /// Cancellation: terminal; the connection attempt is abandoned and
    /// completes with operation_aborted. Thread safe.
    template <class Token = asio::deferred_t>
    auto async_connect(Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code)>(
            [this](auto h) { do_connect(asio::any_completion_handler<void(error_code)>(std::move(h))); }, token);
    }

    /// Send any top-level element (a stanza or a nonza). One writer drains an
    /// outbound queue, so concurrent sends never interleave; stanzas queued
    /// while a write is running go out together in the next write.
    ///
    /// Completion: void(error_code), once the bytes are handed to the
    /// transport; errc::not_connected before connect or after the end,
    /// xml::errc when the element cannot be serialized. Cancellation: none
    /// (a queued element is sent). Thread safe.
    template <class Token = asio::deferred_t>
    auto async_send(xml::element e, Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code)>(
            [this](auto h, xml::element e) {
                do_send(std::move(e), asio::any_completion_handler<void(error_code)>(std::move(h)));
            },
            token, std::move(e));
    }

    /// Send an IQ get/set and wait for its reply (RFC 6120 8.2.3).
    ///
    /// The id is registered before the write (an empty or missing id gets a
    /// fresh one). A reply matches on id and sender (RFC 6120 8.1.2.1): the
    /// 'from' of the reply must be the 'to' of the request; for a request to
    /// our own account or server (no 'to', our bare JID or our domain) an
    /// empty 'from', our bare JID and our domain are all accepted. Anything
    /// else, e.g. a forged reply from a third party, is dropped.
    ///
    /// Completion: void(error_code, xml::element reply). A result gives no
    /// error; an error reply gives its stanza_errc with the error stanza as
    /// `reply`; errc::timeout after `timeout` (default options.iq_timeout);
    /// the stream's end fails every pending IQ (errc::session_closed or the
    /// cause). Cancellation: terminal, partial, total: the pending entry is
    /// removed and the operation completes with operation_aborted (the
    /// request may already be on the wire). Thread safe.
    template <class Token = asio::deferred_t>
    auto async_send_iq(xml::element iq, std::chrono::milliseconds timeout, Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code, xml::element)>(
            [this](auto h, xml::element iq, std::chrono::milliseconds t) {
                do_send_iq(std::move(iq), t,
                           asio::any_completion_handler<void(error_code, xml::element)>(std::move(h)));
            },
            token, std::move(iq), timeout);
    }
    template <class Token = asio::deferred_t>
    auto async_send_iq(xml::element iq, Token&& token = {}) {
        return async_send_iq(std::move(iq), std::chrono::milliseconds::zero(), std::forward<Token>(token));
    }

    /// Close the stream (RFC 6120 4.4): queued output is written, then our
    /// closing tag; waits for the server's closing tag up to
    /// options.close_timeout, then shuts TLS and the socket down. Pending IQs
    /// fail with errc::session_closed.
    ///
    /// Completion: void(error_code): success also when the server did not
    /// answer in time (the connection is closed anyway) or the session was
    /// not connected. Cancellation: none. Thread safe.
    template <class Token = asio::deferred_t>
    auto async_close(Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code)>(
            [this](auto h) { do_close(asio::any_completion_handler<void(error_code)>(std::move(h))); }, token);
    }

    /// The JID the server bound (full), or the account's JID before binding.
    jid address() const;
    /// Current state bits.
    session_state state() const noexcept;
    /// The last error with its detail text (SASL failure text, TLS reason...).
    error_info last_error() const;
    /// Stream id the server sent in its last header.
    std::string stream_id() const;
    /// Name of the SASL mechanism used, "" before authentication.
    std::string sasl_mechanism() const;

private:
    void do_connect(asio::any_completion_handler<void(error_code)> h);
    void do_send(xml::element e, asio::any_completion_handler<void(error_code)> h);
    void do_send_iq(xml::element iq, std::chrono::milliseconds timeout,
                    asio::any_completion_handler<void(error_code, xml::element)> h);
    void do_close(asio::any_completion_handler<void(error_code)> h);

    std::shared_ptr<detail::session_impl> impl_;
};

} // namespace xmpp
