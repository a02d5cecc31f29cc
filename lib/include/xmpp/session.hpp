// xmpp::session: an XMPP session over TCP, STARTTLS, direct TLS or an RFC 7395
// WebSocket: a client's (async_connect) or, handed over by xmpp::server, the
// receiving side's of a client connection.
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
#include <type_traits>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>

#include <xmpp/error.hpp>
#include <xmpp/jid.hpp>
#include <xmpp/net/resolver.hpp>
#include <xmpp/sasl.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_feature.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/websocket.hpp>
#include <xmpp/xml/element.hpp>
#include <xmpp/xml/framer.hpp>

namespace xmpp {

class session;

namespace detail {
class session_impl;
// The non-template entry points behind the operations of session and
// incoming (compiled once, in lib/src/session.cpp).
using send_handler = asio::any_completion_handler<void(error_code)>;
using iq_handler = asio::any_completion_handler<void(error_code, xml::element)>;
void start_send(const std::shared_ptr<session_impl>& s, xml::element e, send_handler h);
void start_send_iq(const std::shared_ptr<session_impl>& s, xml::element iq, std::chrono::milliseconds timeout,
                   iq_handler h);
/// What answering a stanza needs of it: its name and addressing attributes
/// (a few strings, no XML tree: taken for every request a handler gets).
struct stanza_envelope {
    std::string name, ns, id, from, to, type;
    stanza_kind kind = stanza_kind::other;
    explicit operator bool() const noexcept { return !name.empty(); }
};
stanza_envelope envelope_of(xml::node stanza);
/// The envelope as an element without children (for make_error_reply).
xml::element to_element(const stanza_envelope& e);
void start_reply(const std::shared_ptr<session_impl>& s, const stanza_envelope& request, xml::element payload,
                 send_handler h);
/// As above, from the request itself (read at once).
void start_reply(const std::shared_ptr<session_impl>& s, xml::node request, xml::element payload, send_handler h);
/// Tokens whose completion nobody waits for: the operations then store and
/// deliver none (an empty send_handler).
template <class Token>
constexpr bool is_detached = std::is_same_v<std::decay_t<Token>, asio::detached_t>;
void start_reply_error(const std::shared_ptr<session_impl>& s, const stanza_envelope& request, const stanza_error& err,
                       send_handler h);
jid address_of(const session_impl& s);
session make_session(std::shared_ptr<session_impl> s);
} // namespace detail

/// An element the session received, and the context to answer it: the
/// reply operations of this object go to the session it came on, and stay
/// safe to call after the session object is destroyed (they then complete
/// with errc::not_connected). Cheap to move; copyable.
class incoming {
public:
    incoming(std::shared_ptr<detail::session_impl> s, xml::element e)
        : session_(std::move(s)), element_(std::move(e)) {}
    /// As above, with the envelope already taken (the session's own calls).
    incoming(std::shared_ptr<detail::session_impl> s, xml::element e, detail::stanza_envelope env)
        : session_(std::move(s)), element_(std::move(e)), envelope_(std::move(env)) {}
    /// The received top-level element (a stanza, or another element such as
    /// a stream-management request). Owned by this object; empty after
    /// release().
    xml::node element() const noexcept { return element_.root(); }
    /// classify() of the received element (also after release()).
    stanza_kind kind() const noexcept { return element_ ? classify(element_.root()) : envelope_.kind; }
    /// Moves the element out. The reply operations keep working: they need
    /// only the element's name and attributes, which are kept.
    xml::element release() {
        if (!envelope_) envelope_ = detail::envelope_of(element_.root());
        return std::move(element_);
    }
    /// The session's own address (the bound full JID).
    jid local_address() const { return detail::address_of(*session_); }

    /// As session::async_send(), on the session this element came on.
    template <class Token = asio::deferred_t>
    auto async_send(xml::element e, Token&& token = {}) {
        if constexpr (detail::is_detached<Token>) {
            detail::start_send(session_, std::move(e), {});
        } else {
            return asio::async_initiate<Token, void(error_code)>(
                [s = session_](auto h, xml::element e) { detail::start_send(s, std::move(e), detail::send_handler(std::move(h))); },
                token, std::move(e));
        }
    }

    /// As session::async_send_iq(), on the session this element came on.
    template <class Token = asio::deferred_t>
    auto async_send_iq(xml::element iq, std::chrono::milliseconds timeout, Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code, xml::element)>(
            [s = session_](auto h, xml::element iq, std::chrono::milliseconds t) {
                detail::start_send_iq(s, std::move(iq), t, detail::iq_handler(std::move(h)));
            },
            token, std::move(iq), timeout);
    }
    /// As above with the session's default IQ timeout.
    template <class Token = asio::deferred_t>
    auto async_send_iq(xml::element iq, Token&& token = {}) {
        return async_send_iq(std::move(iq), std::chrono::milliseconds::zero(), std::forward<Token>(token));
    }

    /// Answer an IQ get/set with a result (RFC 6120 8.2.3): same id, 'to'
    /// the request's 'from'; `payload`, unless empty, becomes its child.
    ///
    /// Completion: void(error_code), as async_send(); errc::invalid_argument
    /// when the element is not an IQ get or set. Cancellation: none. Thread
    /// safe. The handler still returns true for an answered request. With
    /// asio::detached the reply is written at once from the element, and no
    /// completion is stored (the cheapest answer, for inline handlers).
    template <class Token = asio::deferred_t>
    auto async_reply(xml::element payload, Token&& token = {}) {
        if constexpr (detail::is_detached<Token>) {
            if (element_) detail::start_reply(session_, element_.root(), std::move(payload), {});
            else detail::start_reply(session_, envelope_, std::move(payload), {});
        } else {
            return asio::async_initiate<Token, void(error_code)>(
                // The envelope is taken now: a deferred operation may start
                // after this object is gone.
                [s = session_, req = request()](auto h, xml::element p) {
                    detail::start_reply(s, req, std::move(p), detail::send_handler(std::move(h)));
                },
                token, std::move(payload));
        }
    }
    /// An empty result.
    template <class Token = asio::deferred_t>
    auto async_reply(Token&& token = {}) {
        return async_reply(xml::element(), std::forward<Token>(token));
    }

    /// Answer a stanza with an error (RFC 6120 8.3): any message, presence
    /// or IQ request that is not itself an error.
    ///
    /// Completion: void(error_code), as async_send(); errc::invalid_argument
    /// when the element may not be answered with an error (an error, an IQ
    /// result, not a stanza). Cancellation: none. Thread safe.
    template <class Token = asio::deferred_t>
    auto async_reply_error(stanza_error err, Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code)>(
            [s = session_, req = request()](auto h, stanza_error e) {
                detail::start_reply_error(s, req, e, detail::send_handler(std::move(h)));
            },
            token, std::move(err));
    }

private:
    friend class detail::session_impl; // the automatic error answer uses request()

    detail::stanza_envelope request() const {
        return envelope_ || !element_ ? envelope_ : detail::envelope_of(element_.root());
    }

    std::shared_ptr<detail::session_impl> session_;
    xml::element element_;
    detail::stanza_envelope envelope_; // name and attributes, kept by release()
};

/// Handles one incoming element. Returns true when it handled it; an IQ get
/// or set no handler answers (returns false) gets a service-unavailable
/// error (RFC 6120 8.4). Each call runs as its own coroutine on the
/// session's strand, so a handler may co_await async_send_iq() (or anything
/// else) without blocking the reading of further elements; at most
/// session_options::max_handlers run at once, after which reading pauses.
/// An exception thrown by a handler for an IQ get/set is answered with
/// internal-server-error. Each call shares ownership of the handler, so
/// replacing it or destroying the session never pulls a running handler's
/// state away.
using stanza_handler = std::function<asio::awaitable<bool>(incoming)>;

/// Handles one incoming element at once, from the reader, on the session's
/// strand: no coroutine is started for it. For handlers that answer without
/// waiting (a ping, a disco#info or version responder): each element costs
/// a coroutine frame and a co_spawn less than with stanza_handler, which is
/// what one IQ in flight waits for (bench/iq_roundtrip).
///
/// Returns true when it handled the element; an IQ get or set it does not
/// handle (false) gets service-unavailable, one it throws for gets
/// internal-server-error (RFC 6120 8.4), as with stanza_handler. It must not
/// block: the next element is read after it returns. It may start
/// asynchronous operations on `in` (async_reply(asio::detached), a callback
/// token...) or move `in` into a coroutine it spawns itself. Replacing the
/// handler from inside the call is safe.
using inline_handler = std::function<bool(incoming&)>;

/// Settings of a client session. Every limit and deadline has a default;
/// docs/ARCHITECTURE.md lists them.
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
    /// Connect by RFC 7395 WebSocket to this URL ("wss://host[:port]/path",
    /// or "ws://..." with allow_plaintext) instead of TCP; host and port
    /// are then unused. wss:// verifies the certificate against the URL's
    /// host (RFC 6455 4.1, RFC 2818). STARTTLS never runs on a WebSocket.
    std::string websocket_url;
    /// WebSocket without a URL: discover the endpoint with XEP-0156 from
    /// https://<domain>/.well-known/host-meta and host-meta.json (only
    /// wss:// links unless allow_plaintext), then connect to the first
    /// that answers.
    bool websocket = false;
    /// Settings of XEP-0156 discovery (its own DNS and TLS settings; the
    /// HTTPS port, for tests).
    ws::discovery_options discovery;
    /// A <close see-other-uri='...'/> (RFC 7395 3.6.1) during the connect
    /// is followed up to this many times (never from wss:// to ws://).
    unsigned max_redirects = 3;
    /// DNS servers and deadlines (c-ares, driven by the session's executor).
    net::resolver_options dns;

    /// TLS settings: verification against the JID's domain is on unless
    /// tls.insecure_skip_verify; TLS 1.2 minimum; custom CA file or path.
    tls::client_options tls;
    /// Go on without TLS when the server offers no STARTTLS. Off by default.
    /// An offered STARTTLS is always used, and PLAIN is never sent on a
    /// stream without verified TLS.
    bool allow_plaintext = false;
    /// Mechanism choice (see sasl::select()).
    sasl::options sasl;
    /// Authorization identity (RFC 6120 6.3.8); usually empty.
    std::string authzid;

    /// Parser limits (largest element, depth, attributes).
    xml::limits limits;
    /// The whole of async_connect: DNS, TCP, TLS, negotiation.
    std::chrono::milliseconds connect_timeout{30000};
    /// Each TCP connection attempt (one address of one target); then the
    /// next address or target is tried (RFC 6120 3.2.1 step 9).
    std::chrono::milliseconds connect_attempt_timeout{10000};
    /// Each wait for the server during negotiation (the direct-TLS
    /// handshake included).
    std::chrono::milliseconds step_timeout{15000};
    /// Default deadline of async_send_iq.
    std::chrono::milliseconds iq_timeout{30000};
    /// How long async_close waits for the server's closing tag, and then
    /// for the TLS close.
    std::chrono::milliseconds close_timeout{5000};
    /// Bytes read per read_some.
    std::size_t read_size = 4096;
    /// Most bytes that may wait in the outbound queue (beside the write in
    /// progress). Past it, async_send and async_send_iq complete with
    /// errc::send_queue_full (the session goes on), and an automatic error
    /// reply the session owes the server ends the session with that code:
    /// a server that floods requests and does not read the answers.
    std::size_t max_send_queue = 1024 * 1024;
    /// Most handler calls running at once; reading pauses until one ends
    /// (a flood meets TCP back-pressure instead of growing memory).
    std::size_t max_handlers = 256;

    /// Features negotiated after the built-in STARTTLS, SASL and bind.
    std::vector<std::shared_ptr<const stream_feature>> extra_features;

    /// Tee hooks for an XML console: every chunk of bytes read or written,
    /// after TLS. Called on the session's strand; must not block. An
    /// exception thrown from one ends the session.
    std::function<void(std::string_view)> on_read;
    std::function<void(std::string_view)> on_write;
    /// Called once when a connected session ends, with the reason
    /// (errc::session_closed after async_close), on the session's strand.
    /// Not called when the session object is destroyed first.
    std::function<void(const error_info&)> on_closed;
};

/// A client session: connection, negotiation, stanza I/O.
///
/// Thread safety: the asynchronous operations and the accessors may be
/// used from any thread; the work runs on the session's strand.
/// set_handler() and set_inline_handler() must not race with each other.
/// Destroying the session closes the connection at once; pending operations
/// then complete with errc::session_closed, handlers still running finish on
/// their own. Completion handlers run through their own associated
/// executor, which is kept busy (outstanding work) while the operation is
/// pending (the session's own pending work does that on its io_context).
class session {
public:
    using executor_type = asio::any_io_executor;

    /// A session whose work runs on a new strand of `ex`.
    session(asio::any_io_executor ex, session_options opts);
    /// Closes the connection at once (see the class comment).
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    /// Moves the session; the moved-from object may only be destroyed or
    /// assigned to.
    session(session&&) noexcept = default;
    session& operator=(session&& other) noexcept;

    /// The session's strand.
    executor_type get_executor() const noexcept;

    /// Called for each incoming element except IQ results and errors (a
    /// matched reply completes its async_send_iq; an unmatched one, e.g. a
    /// reply forged by a third party, is dropped). Set it before
    /// async_connect; setting it later affects elements read from then on.
    void set_handler(stanza_handler h);
    /// As set_handler(), with a handler that runs inline (see
    /// inline_handler). Replaces a stanza_handler, and set_handler()
    /// replaces this one: a session has one handler.
    void set_inline_handler(inline_handler h);

    /// Dial (DNS SRV or the explicit host), TLS, STARTTLS, SASL, bind.
    ///
    /// Completion: void(error_code). Errors carry their detail in
    /// last_error() (and, for SASL, in the error_code's message):
    /// tls::errc (certificate...), sasl::errc (wrong password:
    /// not_authorized), stream_errc, errc::tls_required, errc::timeout
    /// (options.connect_timeout, step_timeout), errc::already_connected,
    /// DNS and socket errors.
    /// Cancellation: any type (terminal, partial, total) abandons the
    /// attempt: the session is closed and the operation completes with
    /// operation_aborted. Thread safe.
    template <class Token = asio::deferred_t>
    auto async_connect(Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code)>(
            [impl = impl_](auto h) { start_connect(impl, asio::any_completion_handler<void(error_code)>(std::move(h))); },
            token);
    }

    /// Send any top-level element (a stanza or a nonza). One writer drains an
    /// outbound queue, so concurrent sends never interleave; stanzas queued
    /// while a write is running go out together in the next write.
    ///
    /// Completion: void(error_code), once the bytes are handed to the
    /// transport; errc::not_connected before connect or after the end,
    /// errc::session_closed when the stream ends before the bytes went out,
    /// errc::send_queue_full past options.max_send_queue, xml::errc when
    /// the element cannot be serialized. Cancellation: none (a queued
    /// element is sent). Thread safe. With asio::detached no completion is
    /// stored.
    template <class Token = asio::deferred_t>
    auto async_send(xml::element e, Token&& token = {}) {
        if constexpr (detail::is_detached<Token>) {
            detail::start_send(impl_, std::move(e), {});
        } else {
            return asio::async_initiate<Token, void(error_code)>(
                [impl = impl_](auto h, xml::element e) {
                    detail::start_send(impl, std::move(e), detail::send_handler(std::move(h)));
                },
                token, std::move(e));
        }
    }

    /// Send an IQ get/set and wait for its reply (RFC 6120 8.2.3).
    ///
    /// The id is registered before the write (an empty or missing id gets a
    /// fresh one). A reply matches on id and sender (RFC 6120 8.1.2.1): the
    /// 'from' of the reply must be the 'to' of the request; for a request to
    /// our own account or server (no 'to', our bare JID or our domain) an
    /// empty 'from', our bare JID, our full JID and our domain are all
    /// accepted. Anything else, e.g. a forged reply from a third party, is
    /// dropped; so is a get/set that reuses a pending id.
    ///
    /// Completion: void(error_code, xml::element reply). A result gives no
    /// error; an error reply gives its stanza_errc with the error stanza as
    /// `reply`; errc::timeout after `timeout` (zero: options.iq_timeout);
    /// the stream's end fails every pending IQ (errc::session_closed or the
    /// cause); errc::not_connected; errc::invalid_argument for an element
    /// that is not an IQ get/set, an id already pending, or a 'to' that is
    /// not a JID; errc::send_queue_full. Cancellation: terminal, partial,
    /// total: the pending entry is removed and the operation completes with
    /// operation_aborted (the request may already be on the wire).
    /// Thread safe.
    template <class Token = asio::deferred_t>
    auto async_send_iq(xml::element iq, std::chrono::milliseconds timeout, Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code, xml::element)>(
            [impl = impl_](auto h, xml::element iq, std::chrono::milliseconds t) {
                detail::start_send_iq(impl, std::move(iq), t, detail::iq_handler(std::move(h)));
            },
            token, std::move(iq), timeout);
    }
    /// As above with options.iq_timeout. Same completion, cancellation and
    /// thread safety.
    template <class Token = asio::deferred_t>
    auto async_send_iq(xml::element iq, Token&& token = {}) {
        return async_send_iq(std::move(iq), std::chrono::milliseconds::zero(), std::forward<Token>(token));
    }

    /// Close the stream (RFC 6120 4.4): queued output is written, then our
    /// closing tag; waits for the server's closing tag up to
    /// options.close_timeout, then shuts TLS (close_notify, bounded by
    /// close_timeout too) and the socket down. Pending IQs fail with
    /// errc::session_closed. During a connect, abandons it.
    ///
    /// Completion: void(error_code): success also when the server did not
    /// answer in time (the connection is closed anyway) or the session was
    /// not connected. Cancellation: none. Thread safe.
    template <class Token = asio::deferred_t>
    auto async_close(Token&& token = {}) {
        return asio::async_initiate<Token, void(error_code)>(
            [impl = impl_](auto h) { start_close(impl, asio::any_completion_handler<void(error_code)>(std::move(h))); },
            token);
    }

    /// Our own address. Client: the JID the server bound (full), or the
    /// account's JID before binding. Receiving side: the served domain.
    jid address() const;
    /// The other end. Client: the server's domain. Receiving side: the
    /// client's bound full JID.
    jid peer_address() const;
    /// True for a session of xmpp::server (the receiving side).
    bool is_received() const noexcept;
    /// Current state bits.
    session_state state() const noexcept;
    /// The last error with its detail text (SASL failure text, TLS reason...).
    error_info last_error() const;
    /// Stream id the server sent in its last header.
    std::string stream_id() const;
    /// Name of the SASL mechanism used, "" before authentication.
    std::string sasl_mechanism() const;

private:
    friend session detail::make_session(std::shared_ptr<detail::session_impl>);
    explicit session(std::shared_ptr<detail::session_impl> impl) noexcept : impl_(std::move(impl)) {}

    static void start_connect(const std::shared_ptr<detail::session_impl>& impl,
                              asio::any_completion_handler<void(error_code)> h);
    static void start_close(const std::shared_ptr<detail::session_impl>& impl,
                            asio::any_completion_handler<void(error_code)> h);

    std::shared_ptr<detail::session_impl> impl_;
};

} // namespace xmpp
