// xmpp::session: dialing, negotiation I/O, the writer queue, the reader loop
// and IQ matching. All template-heavy Asio code of the session lives in this
// translation unit; the public header only type-erases handlers.
#include <xmpp/session.hpp>

#include "detail/received.hpp"

#include <xmpp/negotiator.hpp>
#include <xmpp/server.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/websocket.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <tuple>
#include <mutex>
#include <unordered_map>

namespace xmpp::detail {

namespace {

using boost::system::system_error;

// A stored completion handler and outstanding work on its associated
// executor, so that an io_context running only the caller's side does not
// run out of work while the operation is pending.
// Replies a reader's burst queued go out together at the burst's end, or
// as soon as this much waits (about one Ethernet-sized TCP segment).
constexpr std::size_t cork_flush_bytes = 1536;

// The session's strand over an io_context (make_session_strand).
using session_strand = asio::strand<asio::io_context::executor_type>;

// Where a stored handler runs, as far as completing it is concerned: on
// the io_context under our strand, which the session's own pending work
// keeps running (its executor, our strand, another strand of it), or
// elsewhere.
enum class handler_home : unsigned char { elsewhere, io_context, other_strand, our_strand };

handler_home home_of(const asio::any_completion_executor& ex, const asio::any_io_executor& session) {
    const auto* s = session.target<session_strand>();
    if (!s) return ex == asio::any_completion_executor(session) ? handler_home::our_strand : handler_home::elsewhere;
    if (const auto* e = ex.target<session_strand>()) {
        if (&e->context() != &s->context()) return handler_home::elsewhere;
        return *e == *s ? handler_home::our_strand : handler_home::other_strand;
    }
    if (const auto* e = ex.target<asio::io_context::executor_type>(); e && &e->context() == &s->context())
        return handler_home::io_context;
    return handler_home::elsewhere;
}

template <class Sig>
struct tracked {
    asio::any_completion_handler<Sig> h;
    asio::any_completion_executor work;
    handler_home home = handler_home::elsewhere;

    tracked() = default;
    tracked(asio::any_completion_handler<Sig> handler, const asio::any_io_executor& fallback) {
        // A handler on the session's own io_context (a stanza handler
        // replying, a coroutine on the same io_context awaiting an IQ)
        // needs no guard: until the handler is completed, the session's
        // pending read, the IQ deadline timer or the posted completion
        // itself count as that io_context's work. Taking one costs an
        // allocation and two type-erased calls (bench/iq_roundtrip).
        if (!handler) return; // nobody to complete (a detached send)
        auto ex = asio::get_associated_executor(handler, fallback);
        home = home_of(ex, fallback);
        if (home == handler_home::elsewhere) work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
        // swap, not move-assignment: Boost 1.81's any_completion_handler
        // move-assignment wraps the handler in itself without end.
        h.swap(handler);
    }
    tracked(tracked&&) noexcept = default;
    tracked& operator=(tracked&&) = delete; // see above
    explicit operator bool() const noexcept { return static_cast<bool>(h); }
};

// Hands a stored handler and its arguments to the handler's own executor
// (inline when that executor runs here). The work guard in `t` lives until
// the handler has been handed over. `ex` is the session's executor.
template <class Sig, class Tuple>
void hand_over(tracked<Sig>& t, const asio::any_io_executor& ex, Tuple args) {
    if (!t.h) return; // a detached operation
    // The io_context's executor or our strand, running here: execute()
    // would run the function inline too, after looking the executor up again
    // and wrapping the function in a type-erased executor_function (an
    // allocation and several indirect calls per IQ).
    if (const auto* s = ex.target<session_strand>()) {
        const bool here = t.home == handler_home::our_strand ? s->running_in_this_thread()
                          : t.home == handler_home::io_context ? s->get_inner_executor().running_in_this_thread()
                                                                : false;
        if (here) {
            std::apply(std::move(t.h), std::move(args));
            return;
        }
    }
    auto hex = asio::get_associated_executor(t.h, ex);
    hex.execute([h = std::move(t.h), args = std::move(args)]() mutable { std::apply(std::move(h), std::move(args)); });
}

// Completes a stored handler later, through its own executor, never inside
// the caller's stack (and never while we iterate our containers). Not
// asio::append + post: with Boost 1.81 that path copies the
// any_completion_handler through its converting constructor, which wraps it
// in itself without end. Post to our strand, then run the handler through
// its own associated executor.
template <class Sig, class... Args>
void complete(tracked<Sig> t, const asio::any_io_executor& ex, Args... args) {
    if (!t) return; // a detached operation
    asio::post(ex, [t = std::move(t), ex, args = std::make_tuple(std::move(args)...)]() mutable {
        hand_over(t, ex, std::move(args));
    });
}

asio::any_io_executor make_session_strand(const asio::any_io_executor& ex) {
    if (const auto* io = ex.target<asio::io_context::executor_type>()) return asio::make_strand(*io);
    return asio::make_strand(ex);
}

// Runs a stored handler now, through its own executor: inline when that
// executor runs here (the caller must be at a point where our state is
// consistent: the reader between elements). An exception from the handler
// is rethrown from a posted function, so that it leaves through
// io_context::run as it would from a posted handler.
template <class Sig, class... Args>
void complete_here(tracked<Sig> t, const asio::any_io_executor& ex, Args... args) {
    try {
        hand_over(t, ex, std::make_tuple(std::move(args)...));
    } catch (...) {
        asio::post(ex, [e = std::current_exception()] { std::rethrow_exception(e); });
    }
}

error_info info_of(const system_error& e) {
    // Boost's what() is "text: message [category:value ...]"; keep the
    // text part as our detail.
    std::string w = e.what();
    const auto msg = e.code().message();
    if (w.starts_with(msg)) return {e.code(), {}};
    if (auto at = w.rfind(": " + msg); at != std::string::npos) w.resize(at);
    return {e.code(), std::move(w)};
}

// A stanza's addressing attributes, read in one pass: each lookup on its
// own walks them all (and the reader, the reply matching, the stamping and
// the envelope each need several of them for every stanza).
struct stanza_attrs {
    std::string_view type, id, from, to; // an absent one has no data()
};

stanza_attrs attrs_of(xml::node n) noexcept {
    stanza_attrs r;
    for (auto a = n.native().first_attribute(); a; a = a.next_attribute()) {
        const char* k = a.name();
        std::string_view* slot = nullptr;
        switch (k[0]) {
        case 't':
            if (k[1] == 'o' && k[2] == 0) slot = &r.to;
            else if (std::strcmp(k + 1, "ype") == 0) slot = &r.type;
            break;
        case 'i':
            if (k[1] == 'd' && k[2] == 0) slot = &r.id;
            break;
        case 'f':
            if (std::strcmp(k + 1, "rom") == 0) slot = &r.from;
            break;
        default:
            break;
        }
        if (slot) *slot = a.value();
    }
    return r;
}

} // namespace

class session_impl final : public negotiation_io, public std::enable_shared_from_this<session_impl> {
public:
    session_impl(asio::any_io_executor ex, session_options opts, std::unique_ptr<received_setup> setup = nullptr)
        : exec_(make_session_strand(ex)),
          opts_(std::move(opts)),
          reader_(opts_.limits),
          address_(opts_.address),
          setup_(std::move(setup)),
          received_(setup_ != nullptr),
          framed_(received_ ? (setup_->kind == listener_kind::ws || setup_->kind == listener_kind::wss)
                            : (opts_.websocket || !opts_.websocket_url.empty())),
          close_timer_(exec_),
          iq_timer_(exec_),
          wakeup_(exec_, asio::steady_timer::time_point::max()) {
        if (received_) {
            domain_ = domain_ascii_ = setup_->domain;
            address_ = jid::parse(setup_->domain);
        }
        if (framed_) {
            // RFC 7395 3.3.1: no stream header; each message declares its
            // namespaces. A stanza without xmlns is read as jabber:client,
            // as a <stream:stream> would have it (what Prosody does too).
            xml::stream_header ctx;
            ctx.default_ns = std::string(xml::ns::client);
            ctx.prefixes = {{"stream", std::string(xml::ns::stream)}};
            reader_.set_headerless(ctx);
        }
    }

    const asio::any_io_executor& executor() const noexcept { return exec_; }
    bool framed() const noexcept { return framed_; }
    bool received() const noexcept { return received_; }
    // The default namespace our elements are written in: none on a
    // WebSocket, where each message declares its own (RFC 7395 3.3.1).
    std::string_view content_ns() const noexcept { return framed_ ? std::string_view{} : xml::ns::client; }

    // --- public operations (called on the strand) ----------------------------

    void connect(tracked<void(error_code)> h) {
        if (received_) {
            complete(std::move(h), exec_, make_error_code(errc::invalid_argument));
            return;
        }
        start(std::move(h), {});
    }

    // The connect (client) or the accept handshakes (receiving side, over
    // `sock`): DNS/TCP/TLS/WebSocket, then the negotiator.
    void start(tracked<void(error_code)> h, std::optional<asio::ip::tcp::socket> sock) {
        if (phase_ != phase::idle) {
            complete(std::move(h), exec_, make_error_code(errc::already_connected));
            return;
        }
        phase_ = phase::connecting;
        auto slot = asio::get_associated_cancellation_slot(h.h);
        if (slot.is_connected()) {
            std::weak_ptr<session_impl> weak = shared_from_this();
            slot.assign([weak, ex = exec_](asio::cancellation_type) {
                asio::post(ex, [weak] {
                    if (auto self = weak.lock(); self && self->phase_ == phase::connecting) {
                        self->abort_reason_ = asio::error::operation_aborted;
                        self->abort_io();
                    }
                });
            });
        }
        // Connect-only state: freed once the connect is over, so that an
        // idle session does not carry it (bench/idle_sessions).
        conn_ = std::make_unique<connect_state>(exec_);
        arm(conn_->deadline, received_ ? setup_->handshake_timeout : opts_.connect_timeout);
        auto done = [self = shared_from_this(), h = std::move(h)](std::exception_ptr ep) mutable {
            self->conn_->deadline.cancel();
            self->conn_->step.cancel();
            // Not here: the signal's slot belongs to the operation completing now.
            asio::post(self->exec_, [self] { self->conn_.reset(); });
            auto s = asio::get_associated_cancellation_slot(h.h);
            if (s.is_connected()) s.clear();
            if (!ep && self->phase_ == phase::connecting) {
                self->phase_ = phase::ready;
                // The server starts reading once the user took the session.
                if (!self->received_) self->start_reading();
                complete(std::move(h), self->exec_, error_code{});
                return;
            }
            error_info why{make_error_code(errc::session_closed), "closed while connecting"};
            if (ep) why = info_of(ep);
            // A deadline or a cancellation shows as operation_aborted below.
            if (self->abort_reason_) why.code = self->abort_reason_;
            asio::co_spawn(self->exec_, self->fail_session(std::move(why), false),
                           [self, h = std::move(h)](std::exception_ptr) mutable {
                               complete(std::move(h), self->exec_, self->last_error().code);
                           });
        };
        if (received_)
            asio::co_spawn(exec_, accept_main(std::move(*sock)),
                           asio::bind_cancellation_slot(conn_->cancel.slot(), std::move(done)));
        else
            asio::co_spawn(exec_, connect_main(), asio::bind_cancellation_slot(conn_->cancel.slot(), std::move(done)));
    }

    void send(std::string bytes, tracked<void(error_code)> h) {
        if (phase_ != phase::ready) {
            complete(std::move(h), exec_, make_error_code(errc::not_connected));
            return;
        }
        if (!queue_has_room(bytes.size())) {
            complete(std::move(h), exec_, make_error_code(errc::send_queue_full));
            return;
        }
        enqueue(std::move(bytes), std::move(h));
    }

    void send_iq(xml::element iq, std::chrono::milliseconds timeout, tracked<void(error_code, xml::element)> h) {
        auto fail = [&](error_code ec) { complete(std::move(h), exec_, ec, xml::element()); };
        if (phase_ != phase::ready) return fail(make_error_code(errc::not_connected));
        auto root = iq.root();
        if (!root || root.name() != "iq") return fail(make_error_code(errc::invalid_argument));
        const auto at = attrs_of(root);
        if (at.type != "get" && at.type != "set") return fail(make_error_code(errc::invalid_argument));
        std::string id(at.id);
        if (id.empty()) {
            id = new_id();
            root.set_attr("id", id);
        }
        if (pending_.count(id)) return fail(make_error_code(errc::invalid_argument));
        std::string bytes;
        if (auto ec = xml::write(root, bytes, content_ns())) return fail(ec);
        if (!queue_has_room(bytes.size())) return fail(make_error_code(errc::send_queue_full));
        jid to;
        const bool to_self = is_self(at.to, to); // still valid: set_attr("id") moved no other value
        // A 'to' that is not a JID can never be answered by a JID.
        if (!to_self && to.empty()) return fail(make_error_code(errc::invalid_argument));
        // The generation tells this request from a later one that reuses
        // its id, for a cancellation or a timer that was already on its way.
        const auto gen = ++iq_gen_;
        auto slot = asio::get_associated_cancellation_slot(h.h);
        if (slot.is_connected()) {
            std::weak_ptr<session_impl> weak = shared_from_this();
            slot.assign([weak, id, gen, ex = exec_](asio::cancellation_type) {
                asio::post(ex, [weak, id, gen] {
                    if (auto self = weak.lock()) self->finish_iq(id, gen, asio::error::operation_aborted, {});
                });
            });
        }
        pending_iq p(std::move(h));
        p.to = std::move(to);
        p.to_self = to_self;
        p.gen = gen;
        p.deadline = asio::steady_timer::clock_type::now() + (timeout.count() > 0 ? timeout : opts_.iq_timeout);
        arm_iq_timer(p.deadline);
        // Registered before the write: a reply can never overtake it.
        pending_.emplace(id, std::move(p));
        enqueue(std::move(bytes), {});
    }

    void close(tracked<void(error_code)> h) {
        switch (phase_) {
        case phase::idle:
        case phase::closed:
            complete(std::move(h), exec_, error_code{});
            return;
        case phase::connecting:
            close_waiters_.push_back(std::move(h));
            abort_reason_ = make_error_code(errc::session_closed);
            abort_io();
            return;
        case phase::closing:
            close_waiters_.push_back(std::move(h));
            return;
        case phase::ready:
            break;
        }
        phase_ = phase::closing;
        close_waiters_.push_back(std::move(h));
        // RFC 6120 4.4: our closing tag after everything queued, then wait
        // for the peer's.
        enqueue(closing_tag(), {});
        add_state(session_state::output_closed);
        std::weak_ptr<session_impl> weak = shared_from_this();
        close_timer_.expires_after(opts_.close_timeout);
        close_timer_.async_wait([weak](error_code ec) {
            if (ec) return;
            if (auto self = weak.lock())
                self->finish_close({make_error_code(errc::session_closed),
                                    "closed (the server did not answer the closing tag in time)"});
        });
    }

    /// The owning session object is going away: stop everything now.
    void detach() {
        handler_ = nullptr; // running handler calls share ownership
        inline_handler_ = nullptr;
        abort_reason_ = make_error_code(errc::session_closed);
        // No on_closed: what it would tell belongs to an object that is gone.
        end_session({make_error_code(errc::session_closed), "session destroyed"}, false);
    }

    void set_handler(stanza_handler h) {
        handler_ = h ? std::make_shared<const stanza_handler>(std::move(h)) : nullptr;
        inline_handler_ = nullptr;
    }
    void set_inline_handler(inline_handler h) {
        inline_handler_ = h ? std::make_shared<const inline_handler>(std::move(h)) : nullptr;
        handler_ = nullptr;
    }

    // Receiving side: the user has the session; stanzas may flow.
    void begin_reading() {
        if (phase_ == phase::ready) start_reading();
    }

    // Ends the stream with a stream error of ours (a resource conflict,
    // the server stopping).
    void kick(stream_errc cond, std::string text) {
        if (phase_ == phase::closed) return;
        if (phase_ == phase::connecting) {
            abort_reason_ = make_error_code(cond);
            abort_io();
            return;
        }
        asio::co_spawn(exec_, fail_session({make_error_code(cond), std::move(text)}, true), asio::detached);
    }

    // --- negotiation_stream ------------------------------------------------------

    asio::awaitable<void> send(xml::node element) override {
        std::string bytes;
        if (auto ec = xml::write(element, bytes, content_ns())) throw system_error(ec, "cannot serialize element");
        co_await write_now(bytes);
    }

    asio::awaitable<void> send_raw(std::string_view xml_text) override { co_await write_now(xml_text); }

    asio::awaitable<xml::element> receive() override {
        auto ev = co_await read_event(true);
        if (ev == xml::frame_event::stream_close) {
            add_state(session_state::input_closed);
            if (!see_other_.empty())
                throw system_error(make_error_code(stream_errc::see_other_host), see_other_);
            throw system_error(make_error_code(errc::peer_closed), received_ ? "the client closed the stream during negotiation"
                                                                             : "the server closed the stream during negotiation");
        }
        if (ev == xml::frame_event::stream_open)
            throw system_error(make_error_code(stream_errc::bad_format), "a second stream header");
        auto e = reader_.take_element();
        throw_if_stream_error(e.root());
        co_return e;
    }

    session_state state() const noexcept override { return static_cast<session_state>(state_bits_.load()); }
    transport& current_transport() noexcept override { return *transport_; }

    std::unique_ptr<transport> take_transport() override {
        // RFC 6120 5.4.3.3: nothing may follow <proceed/> before the handshake.
        if (reader_.get_framer().buffered() != 0)
            throw system_error(make_error_code(errc::tls_injection),
                               std::to_string(reader_.get_framer().buffered()) + " bytes followed <proceed/>");
        reader_.clear();
        return std::move(transport_);
    }

    const jid& local_address() const noexcept override { return address_; }
    void set_local_address(jid j) override {
        std::lock_guard lk(info_mutex_);
        address_ = std::move(j);
    }
    const std::string& peer_domain() const noexcept override { return domain_ascii_; }
    bool is_initiator() const noexcept override { return !received_; }
    const jid& peer_address() const noexcept override { return peer_; }
    void set_peer_address(jid j) override {
        std::lock_guard lk(info_mutex_);
        peer_ = std::move(j);
    }
    void set_auth_mechanism(std::string name) override {
        std::lock_guard lk(info_mutex_);
        mechanism_ = std::move(name);
    }

    // --- negotiation_io --------------------------------------------------------

    asio::awaitable<void> open_stream() override {
        // The initiator restarts its reader before its own header; the
        // receiving side did so before reading the peer's (receive_header).
        if (!received_) reader_.reset();
        auto out = header_text();
        header_sent_ = true;
        co_await write_now(out);
    }

    // Our stream header (RFC 6120 4.7), or <open/> on a WebSocket.
    std::string header_text() {
        xml::stream_header h;
        if (!received_) {
            h.to = domain_;
            // RFC 6120 4.7.1: 'from' only once the stream is protected.
            if (has_all(state(), session_state::secure)) h.from = std::string(address_.bare().str());
        } else {
            // 4.7.1-4.7.3: our domain, a fresh id, and the peer's 'from'.
            h.from = domain_;
            h.id = new_id();
            h.to = peer_header_.from;
            std::lock_guard lk(info_mutex_);
            own_id_ = h.id;
        }
        h.version = "1.0";
        h.lang = "en";
        std::string out;
        if (framed_) {
            out = framing_open(h);
        } else {
            h.default_ns = std::string(xml::ns::client);
            h.prefixes = {{"stream", std::string(xml::ns::stream)}};
            xml::write_stream_header(h, out);
        }
        return out;
    }

    asio::awaitable<xml::stream_header> receive_header() override {
        if (received_ && headers_read_ > 0) reader_.reset(); // a restart (4.3.3)
        auto ev = co_await read_event(true);
        if (ev != xml::frame_event::stream_open) {
            std::string why = received_ ? "expected the client's stream header" : "expected the server's stream header";
            if (framed_) why += " (<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>)";
            throw system_error(make_error_code(errc::bad_stream_header), why);
        }
        ++headers_read_;
        std::lock_guard lk(info_mutex_);
        peer_header_ = framed_ ? framed_header_ : reader_.header();
        co_return peer_header_;
    }

    void replace_transport(std::unique_ptr<transport> t) override {
        transport_ = std::move(t);
        drained_ = false;
        add_state(session_state::secure);
    }

    void add_state(session_state bits) override {
        state_bits_.fetch_or(static_cast<std::uint16_t>(bits));
    }

    // --- accessors (any thread) ------------------------------------------------------

    jid address() const { std::lock_guard lk(info_mutex_); return address_; }
    error_info last_error() const { std::lock_guard lk(info_mutex_); return last_error_; }
    std::string stream_id() const { std::lock_guard lk(info_mutex_); return received_ ? own_id_ : peer_header_.id; }
    jid peer() const {
        std::lock_guard lk(info_mutex_);
        if (!received_) return address_.domain();
        return peer_;
    }
    std::string mechanism() const { std::lock_guard lk(info_mutex_); return mechanism_; }

private:
    enum class phase { idle, connecting, ready, closing, closed };

    struct ready_reply {
        tracked<void(error_code, xml::element)> h;
        error_code ec;
        xml::element reply;
    };

    struct pending_iq {
        explicit pending_iq(tracked<void(error_code, xml::element)> h) : handler(std::move(h)) {}
        jid to;               // the request's 'to', prepared
        bool to_self = false; // to our account or our server (8.1.2.1)
        std::uint64_t gen = 0;
        asio::steady_timer::time_point deadline;
        tracked<void(error_code, xml::element)> handler;
    };

    static error_info info_of(std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const system_error& e) {
            return detail::info_of(e);
        } catch (const std::exception& e) {
            // Our own code throws system_error; anything else came from an
            // application callback (a tee hook).
            return {make_error_code(errc::callback_failed), e.what()};
        } catch (...) {
            return {make_error_code(errc::callback_failed), "unknown exception"};
        }
    }

    // --- connecting -------------------------------------------------------------------

    asio::awaitable<void> connect_main() {
        domain_ = std::string(opts_.address.domainpart());
        if (domain_.empty()) throw system_error(make_error_code(errc::invalid_argument), "the account JID has no domain");
        // The JID holds U-labels; DNS, SNI and the certificate check need
        // A-labels (RFC 5890, RFC 6125 6.4.2). The stream header keeps the
        // JID's form (RFC 7622 3.2).
        error_code idn_ec;
        domain_ascii_ = domain_to_ascii(opts_.address, idn_ec);
        if (idn_ec) throw system_error(idn_ec, "the account's domain has no DNS form");
        resolver_ = std::make_unique<net::resolver>(exec_, opts_.dns);
        if (framed_) {
            co_await connect_websocket();
            co_return;
        }

        std::vector<net::connect_target> targets;
        if (!opts_.host.empty()) {
            std::uint16_t port = opts_.port;
            if (port == 0) port = opts_.direct_tls ? 5223 : 5222;
            targets.push_back({opts_.host, port, opts_.direct_tls});
        } else {
            targets = co_await net::resolve_xmpp(*resolver_, domain_ascii_);
        }

        // RFC 6120 3.2.1 step 9 / XEP-0368: a target that refuses TCP, or
        // whose direct-TLS handshake fails, gives way to the next. Once an
        // XML stream is open the server has answered: no further target.
        std::optional<tls::context> starttls_ctx;
        error_info first_failure;
        for (auto& target : targets) {
            // One context per distinct option set in the process, not per
            // connection: an SSL_CTX costs ~3 KB (BoringSSL) to ~14 KB
            // (OpenSSL) and each connection keeps its own alive.
            tls::client_options tls_opts = opts_.tls;
            tls_opts.alpn.clear();
            if (target.direct_tls) tls_opts.alpn = {"xmpp-client"};
            try {
                std::vector<net::connect_target> one{target};
                auto conn = co_await net::dial(*resolver_, std::move(one), opts_.connect_attempt_timeout);
                auto& sock = conn.first;
                auto tls_ctx = tls::context::shared_client(tls_opts);
                if (conn.second.direct_tls) {
                    // XEP-0368: ALPN xmpp-client, SNI and verification
                    // against the JID's domain, not the SRV target
                    // (RFC 7590 3.2).
                    arm(conn_->step, opts_.step_timeout);
                    transport_ = co_await tls::connect(std::move(sock), tls_ctx, domain_ascii_);
                    conn_->step.cancel();
                    add_state(session_state::secure);
                } else {
                    transport_ = tls::make_tcp_transport(std::move(sock));
                    starttls_ctx = std::move(tls_ctx);
                }
                break;
            } catch (const system_error& e) {
                conn_->step.cancel();
                if (abort_reason_ || e.code() == asio::error::operation_aborted) throw;
                if (!first_failure.code) first_failure = detail::info_of(e);
            }
        }
        if (!transport_) throw system_error(first_failure.code, first_failure.text);
        resolver_.reset();

        client_features_config cfg = client_config();
        cfg.tls = std::move(starttls_ctx);
        auto neg = make_client_negotiator(cfg, opts_.extra_features);
        co_await neg->run(*this);
    }

    // RFC 7395 over ws:// or wss:// (XEP-0156 discovery without a URL),
    // following <close see-other-uri/> redirects (3.6.1).
    asio::awaitable<void> connect_websocket() {
        std::vector<std::string> urls;
        if (!opts_.websocket_url.empty()) {
            urls.push_back(opts_.websocket_url);
        } else {
            auto d = opts_.discovery;
            d.allow_insecure = d.allow_insecure || opts_.allow_plaintext;
            urls = co_await ws::discover(domain_ascii_, d);
        }
        unsigned redirects = 0;
        bool was_secure = true;
        for (std::size_t i = 0; i < urls.size(); ++i) {
            error_code ec;
            auto u = ws::parse_url(urls[i], ec);
            if (ec) throw system_error(ec, "not a WebSocket URL: '" + urls[i] + "'");
            if (!u.secure && !opts_.allow_plaintext)
                throw system_error(make_error_code(errc::tls_required),
                                   "'" + urls[i] + "' is not encrypted: use wss:// (or allow_plaintext)");
            if (redirects > 0 && was_secure && !u.secure)
                throw system_error(make_error_code(errc::tls_required),
                                   "a redirect from wss:// to '" + urls[i] + "' refused");
            const bool last = i + 1 == urls.size();
            try {
                co_await open_websocket(u);
            } catch (const system_error& e) {
                conn_->step.cancel();
                // Discovery may list several endpoints: try the next one.
                if (abort_reason_ || e.code() == asio::error::operation_aborted || last) throw;
                continue;
            }
            try {
                client_features_config cfg = client_config();
                auto neg = make_client_negotiator(cfg, opts_.extra_features);
                co_await neg->run(*this);
                co_return;
            } catch (const system_error& e) {
                if (e.code() != stream_errc::see_other_host || see_other_.empty() || abort_reason_) throw;
                if (++redirects > opts_.max_redirects)
                    throw system_error(e.code(), "too many redirects (last to '" + see_other_ + "')");
            }
            // Redirected: a fresh stream to the new URL.
            was_secure = u.secure;
            urls.assign(1, see_other_);
            i = static_cast<std::size_t>(-1);
            reset_stream_state();
        }
        throw system_error(make_error_code(ws::errc::discovery_failed), "no WebSocket endpoint");
    }

    asio::awaitable<void> open_websocket(const ws::url& u) {
        std::vector<net::connect_target> one{{u.host, u.port, false}};
        auto conn = co_await net::dial(*resolver_, std::move(one), opts_.connect_attempt_timeout);
        std::unique_ptr<transport> t = tls::make_tcp_transport(std::move(conn.first));
        if (u.secure) {
            // RFC 6455 4.1 / RFC 2818: the certificate must name the URL's host.
            tls::client_options tls_opts = opts_.tls;
            tls_opts.alpn = {"http/1.1"};
            auto ctx = tls::context::shared_client(tls_opts);
            arm(conn_->step, opts_.step_timeout);
            t = co_await tls::connect(std::move(t), ctx, u.host);
            conn_->step.cancel();
        }
        ws::options wo;
        const bool default_port = u.port == (u.secure ? 443 : 80);
        const bool v6 = u.host.find(':') != std::string::npos;
        wo.host = v6 ? "[" + u.host + "]" : u.host;
        if (!default_port) wo.host += ":" + std::to_string(u.port);
        wo.target = u.target;
        wo.max_message_bytes = opts_.limits.max_element_bytes;
        arm(conn_->step, opts_.step_timeout);
        transport_ = co_await ws::connect(std::move(t), wo);
        conn_->step.cancel();
        if (transport_->is_secure()) add_state(session_state::secure);
    }

    // Before a redirected stream starts over on a new connection.
    void reset_stream_state() {
        if (transport_) transport_->close();
        transport_.reset();
        state_bits_.store(0);
        header_sent_ = false;
        peer_sent_stream_error_ = false;
        see_other_.clear();
        message_ready_ = false;
        drained_ = false;
        reader_.clear();
    }

    client_features_config client_config() const {
        client_features_config cfg;
        cfg.credentials.username = std::string(opts_.address.localpart());
        cfg.credentials.password = opts_.password;
        cfg.credentials.authzid = opts_.authzid;
        cfg.sasl = opts_.sasl;
        cfg.allow_plaintext = opts_.allow_plaintext;
        cfg.resource = std::string(opts_.address.resourcepart());
        return cfg;
    }

    // --- the receiving side ----------------------------------------------------------------

    asio::awaitable<void> accept_main(asio::ip::tcp::socket sock) {
        std::unique_ptr<transport> t = tls::make_tcp_transport(std::move(sock));
        const auto kind = setup_->kind;
        if (kind == listener_kind::direct_tls || kind == listener_kind::wss) {
            arm(conn_->step, setup_->step_timeout);
            t = co_await tls::accept(std::move(t), *setup_->tls);
            conn_->step.cancel();
            add_state(session_state::secure);
        }
        if (framed_) {
            ws::options wo = setup_->ws;
            wo.max_message_bytes = opts_.limits.max_element_bytes;
            arm(conn_->step, setup_->step_timeout);
            t = co_await ws::accept(std::move(t), wo);
            conn_->step.cancel();
        }
        transport_ = std::move(t);
        add_state(session_state::received);
        if (framed_ && !setup_->see_other_uri.empty()) {
            // RFC 7395 3.6.1: answer the <open/>, then redirect with <close/>.
            co_await receive_header();
            co_await open_stream();
            std::string out = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='";
            (void)xml::escape_attr(setup_->see_other_uri, out);
            out += "'/>";
            co_await write_now(out);
            add_state(session_state::output_closed);
            throw system_error(make_error_code(stream_errc::see_other_host), "redirected to " + setup_->see_other_uri);
        }
        co_await setup_->negotiation->run(*this);
    }

    // RFC 6120 8.1.2.1: the server stamps 'from' on what the client sends
    // and refuses another sender.
    // Returns the 'from' the stanza carries now.
    std::string_view stamp_from(xml::node e, std::string_view from) {
        if (from.empty()) {
            // Absent (attrs_of left no value) or empty: set it; when absent,
            // without set_attr's search for an attribute to replace.
            const std::string_view p = peer_.str();
            auto a = from.data() ? e.native().attribute("from") : pugi::xml_attribute();
            if (!a) a = e.native().append_attribute("from");
            a.set_value(p.data(), p.size());
            return p;
        }
        error_code ec;
        auto f = jid::parse(from, ec);
        if (ec || (f != peer_ && f != peer_.bare()))
            throw system_error(make_error_code(stream_errc::invalid_from),
                               "a stanza from '" + std::string(from) + "' on the stream of " + std::string(peer_.str()));
        return from;
    }

    // --- I/O primitives -------------------------------------------------------------------

    void arm(asio::steady_timer& t, std::chrono::milliseconds d) {
        t.expires_after(d);
        std::weak_ptr<session_impl> weak = shared_from_this();
        t.async_wait([weak](error_code ec) {
            if (ec) return;
            if (auto self = weak.lock(); self && !self->abort_reason_) {
                self->abort_reason_ = make_error_code(errc::timeout);
                self->abort_io();
            }
        });
    }

    // Breaks every pending wait of the connect coroutine.
    void abort_io() {
        if (resolver_) resolver_->cancel();
        if (transport_) transport_->close();
        if (conn_) conn_->cancel.emit(asio::cancellation_type::terminal);
    }

    // A WebSocket batch: one message per element, in one lower write.
    asio::awaitable<void> write_framed(std::string_view batch, const std::vector<std::size_t>& sizes) {
        if (!transport_) throw system_error(make_error_code(errc::session_closed), "no transport");
        if (opts_.on_write) opts_.on_write(batch);
        std::vector<std::string_view> messages;
        messages.reserve(sizes.size());
        std::size_t at = 0;
        for (auto n : sizes) {
            messages.push_back(batch.substr(at, n));
            at += n;
        }
        co_await transport_->write_messages(messages);
    }

    asio::awaitable<void> write_now(std::string_view bytes, bool report = true) {
        if (!transport_) throw system_error(make_error_code(errc::session_closed), "no transport");
        if (opts_.on_write && report) opts_.on_write(bytes);
        co_await transport_->write(bytes);
    }

    // The next framer event; reads as needed. `step_deadline`: each wait for
    // input is bounded by options.step_timeout (negotiation).
    asio::awaitable<xml::frame_event> read_event(bool step_deadline) {
        for (;;) {
            error_code ec;
            if (framed_) {
                // RFC 7395 3.3.1: parse only whole messages, each exactly
                // one element.
                if (message_ready_) {
                    message_ready_ = false;
                    co_return framed_event();
                }
            } else {
                auto ev = reader_.next(ec);
                if (ev != xml::frame_event::need_more) co_return ev;
                if (ec) throw system_error(ec, std::string(reader_.error_text()));
            }
            if (!transport_) throw system_error(make_error_code(errc::session_closed), "no transport");
            // A read shorter than asked for has most likely drained the
            // socket: wait first instead of a read that would only say
            // would_block (one syscall less per stanza).
            if (drained_) {
                drained_ = false;
                // (Here, not in a coroutine of its own: a frame less per wait.)
                if (corked_ && !uncork_now()) co_await finish_uncork(); // never wait with replies held back
                // Idle: hold no read buffer and no parse tree while waiting.
                reader_.shrink();
                // Negotiation only: conn_ lives until the connect is over.
                if (step_deadline && conn_) arm(conn_->step, opts_.step_timeout);
                co_await transport_->wait_read();
                if (step_deadline && conn_) conn_->step.cancel();
            }
            auto buf = reader_.prepare(opts_.read_size);
            const std::size_t want = std::min(buf.size(), opts_.read_size);
            std::size_t n = transport_->read_some(asio::buffer(buf.data(), want), ec);
            if (ec == asio::error::would_block) {
                reader_.commit(0);
                drained_ = true; // wait (above), then read again
                continue;
            }
            // (A WebSocket read stops at each message's end: drained only
            // when no decoded message waits.)
            drained_ = n < want && !transport_->input_buffered();
            if (ec == asio::error::eof)
                throw system_error(make_error_code(errc::peer_closed), "the server closed the connection");
            if (ec) throw system_error(ec, "read failed");
            if (opts_.on_read) opts_.on_read(std::string_view(buf.data(), n));
            reader_.commit(n);
            if (framed_) message_ready_ = transport_->message_complete();
        }
    }

    // The event of the whole WebSocket message now in the reader.
    xml::frame_event framed_event() {
        error_code ec;
        auto ev = reader_.next(ec);
        if (ec) throw system_error(ec, std::string(reader_.error_text()));
        if (ev == xml::frame_event::need_more)
            throw system_error(make_error_code(stream_errc::not_well_formed),
                               "a WebSocket message that is not one complete XML element (RFC 7395 3.3.1)");
        if (reader_.get_framer().buffered() != 0)
            throw system_error(make_error_code(stream_errc::bad_format),
                               "more than one XML element in a WebSocket message (RFC 7395 3.3.1)");
        auto e = reader_.element();
        if (e.ns() == xml::ns::framing) {
            if (e.name() == "open") {
                // 3.3.2: the header's attributes on <open/>; no content namespace.
                xml::stream_header h;
                h.from = std::string(e.attr("from"));
                h.to = std::string(e.attr("to"));
                h.id = std::string(e.attr("id"));
                h.version = std::string(e.attr("version"));
                h.lang = std::string(e.attr("xml:lang"));
                h.default_ns = std::string(xml::ns::client);
                h.qname = "open";
                framed_header_ = std::move(h);
                return xml::frame_event::stream_open;
            }
            if (e.name() == "close") {
                // 3.6.1: a redirect rides on <close/>.
                see_other_ = std::string(e.attr("see-other-uri"));
                return xml::frame_event::stream_close;
            }
        }
        if (e.name() == "stream" && e.ns() == xml::ns::stream)
            throw system_error(make_error_code(stream_errc::bad_format),
                               "<stream:stream> on a WebSocket: the stream opens with <open/> (RFC 7395 3.3.2)");
        return xml::frame_event::element;
    }

    // RFC 7395 3.3.2: <open/> carries the stream header's attributes.
    static std::string framing_open(const xml::stream_header& h) {
        xml::element open("open", xml::ns::framing);
        auto r = open.root();
        for (auto [name, value] : {std::pair<const char*, const std::string*>{"from", &h.from}, {"to", &h.to},
                                   {"id", &h.id}, {"version", &h.version}, {"xml:lang", &h.lang}})
            if (!value->empty()) r.set_attr(name, *value);
        return xml::to_string(r);
    }

    static void throw_if_stream_error(xml::node e) {
        if (auto err = stream_error::from_element(e)) {
            std::string text = "stream error from the server";
            if (!err->text.empty()) text += ": " + err->text;
            throw system_error(err->code(), text);
        }
    }

    std::string closing_tag() const {
        if (framed_) return "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"; // RFC 7395 3.6
        std::string out;
        xml::stream_header h;
        h.qname = "stream:stream";
        xml::write_stream_close(h, out);
        return out;
    }

    // Ends the session after a failure: tells the peer why when the problem
    // is its XML (RFC 6120 4.9.1.1), closes our stream (best effort, 1 s,
    // behind whatever the writer is sending: writes never interleave), then
    // closes the transport and fails everything pending.
    asio::awaitable<void> fail_session(error_info why, bool connected) {
        corked_ = false;
        {
            std::lock_guard lk(info_mutex_);
            last_error_ = why;
        }
        // 4.9.1.1: the receiving side opens its stream to say why, even when
        // the peer's header was the problem.
        const bool can_answer = received_ && stream_condition_of(why.code).has_value();
        if (transport_ && !header_sent_ && can_answer && phase_ != phase::closed && !abort_reason_ && !ending_) {
            push_out(header_text());
            header_sent_ = true;
        }
        if (transport_ && header_sent_ && phase_ != phase::closed && !abort_reason_ && !ending_) {
            ending_ = true;
            auto cond = stream_condition_of(why.code);
            if (cond && !peer_sent_stream_error_) {
                stream_error se;
                se.condition = *cond;
                push_out(xml::to_string(se.to_element().root())); // declares xmlns:stream itself
            }
            if (!has_all(state(), session_state::output_closed)) push_out(closing_tag());
            add_state(session_state::output_closed);
            start_writer();
            co_await wait_writer_idle(std::chrono::milliseconds(1000));
        }
        end_session(std::move(why), connected);
    }

    // --- writer -------------------------------------------------------------------------------

    // out_ holds what waits behind the write in progress.
    bool queue_has_room(std::size_t n) const noexcept {
        return out_.size() <= opts_.max_send_queue && n <= opts_.max_send_queue - out_.size();
    }

    // Which stream error tells the peer about a failure that is its fault
    // (RFC 6120 4.9.1.1).
    static std::optional<stream_errc> stream_condition_of(const error_code& ec) {
        if (ec.category() == stream_category()) return static_cast<stream_errc>(ec.value());
        if (ec == ws::errc::binary_frame) return stream_errc::unsupported_encoding;
        if (ec == ws::errc::message_too_large) return stream_errc::policy_violation;
        return std::nullopt;
    }

    // One element (a message on a WebSocket) into the outbound queue.
    void push_out(std::string bytes) {
        if (framed_) out_sizes_.push_back(bytes.size());
        out_ += bytes;
    }

    void enqueue(std::string bytes, tracked<void(error_code)> h) {
        push_out(std::move(bytes));
        if (h) write_waiters_.push_back(std::move(h));
        start_writer();
    }

    void start_writer() {
        if (!corked_ && !writing_ && !out_.empty() && transport_) {
            writing_ = true;
            // A lone request (one IQ pending, nobody waiting on a send): no
            // company to wait for, write at once. Otherwise yield once first
            // so that sends already queued on the strand join the write.
            const bool alone = pending_.size() <= 1 && write_waiters_.empty();
            asio::co_spawn(exec_, write_loop(shared_from_this(), !alone), asio::detached);
        }
    }

    asio::awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<session_impl> self, bool gather) {
        // co_spawn runs the first step inline: the yield lets sends already
        // queued on the strand join the first write.
        if (gather) co_await asio::post(exec_, asio::use_awaitable);
        co_await drain_queue();
    }

    // Writes what is queued until nothing is; writing_ is set by the caller.
    // `here`: the reader's uncork, a safe point: the senders complete inline.
    // `reported`: on_write has seen the first batch already (uncork_now()).
    asio::awaitable<void> drain_queue(bool here = false, bool reported = false) {
        error_info failure;
        while (!out_.empty() && phase_ != phase::closed) {
            std::string batch;
            batch.swap(out_); // everything queued so far goes out in one write
            std::vector<std::size_t> sizes;
            sizes.swap(out_sizes_);
            auto waiters = std::move(write_waiters_);
            write_waiters_.clear();
            error_code ec;
            try {
                if (framed_) co_await write_framed(batch, sizes);
                else co_await write_now(batch, !std::exchange(reported, false));
            } catch (...) {
                failure = info_of(std::current_exception());
                ec = failure.code;
            }
            // A write cut short by the session's own end is not a write
            // error: the stream ended first.
            if (ec && (ending_ || phase_ == phase::closed)) ec = make_error_code(errc::session_closed);
            for (auto& w : waiters) {
                if (here && !ec) complete_here(std::move(w), exec_, ec);
                else complete(std::move(w), exec_, ec);
            }
            if (ec) break;
        }
        writing_ = false;
        wakeup_.cancel();
        if (failure.code && !ending_) {
            if (failure.text.empty() || failure.code != errc::callback_failed) failure.text = "write failed: " + failure.text;
            end_session(std::move(failure), true);
        }
    }

    // The reader, done with a burst of input, writes what its handlers
    // queued itself: one non-blocking write, no coroutine and no scheduler
    // trip, the senders completed inline (bench/iq_roundtrip). True when that
    // was all there was to do; false when finish_uncork() must write the
    // rest (a WebSocket's messages, a transport without try_write, a socket
    // that took part).
    bool uncork_now() {
        if (writing_ || out_.empty() || !transport_ || phase_ == phase::closed) {
            corked_ = false; // nothing to write here
            return true;
        }
        if (framed_) return false; // messages: write_messages()
        if (opts_.on_write) opts_.on_write(out_); // the batch, once, as write_now() reports it
        error_code ec;
        const std::size_t n = transport_->try_write(out_, ec);
        if (n == out_.size()) {
            corked_ = false;
            out_.clear();
            auto waiters = std::move(write_waiters_);
            write_waiters_.clear();
            for (auto& w : waiters) complete_here(std::move(w), exec_, error_code{});
            return true;
        }
        out_.erase(0, n); // the rest (and an error, if any) through write_now()
        return false;
    }

    // What uncork_now() left: on_write has seen the batch, unless it is a
    // WebSocket's (uncork_now() writes no messages).
    asio::awaitable<void> finish_uncork() {
        corked_ = false;
        writing_ = true;
        co_await drain_queue(true, !framed_);
    }

    // Waits until the writer has nothing in flight, at most `limit`; past
    // it the transport is closed, which ends the write.
    asio::awaitable<void> wait_writer_idle(std::chrono::milliseconds limit) {
        if (!writing_) co_return;
        asio::steady_timer deadline(exec_, limit);
        std::weak_ptr<session_impl> weak = shared_from_this();
        deadline.async_wait([weak](error_code ec) {
            if (ec) return;
            if (auto self = weak.lock(); self && self->transport_) self->transport_->close();
        });
        while (writing_) co_await wakeup_.async_wait(asio::as_tuple(asio::use_awaitable));
        deadline.cancel();
    }

    // --- reader loop ------------------------------------------------------------------------

    void start_reading() {
        asio::co_spawn(exec_, read_loop(shared_from_this()), asio::detached);
    }

    asio::awaitable<void> read_loop([[maybe_unused]] std::shared_ptr<session_impl> self) {
        error_info failure;
        try {
            for (;;) {
                // Back-pressure: too many handlers running, read no further.
                while (handlers_running_ >= std::max<std::size_t>(opts_.max_handlers, 1) && phase_ != phase::closed) {
                    if (corked_ && !uncork_now()) co_await finish_uncork();
                    co_await wakeup_.async_wait(asio::as_tuple(asio::use_awaitable));
                }
                if (phase_ == phase::closed) co_return;
                auto ev = co_await read_event(false);
                if (phase_ == phase::closed) co_return;
                if (ev == xml::frame_event::element) {
                    // Replies to elements already buffered wait for the end
                    // of the burst and go out together (and inline).
                    corked_ = true;
                    on_element(reader_.element());
                    run_ready();
                    // A burst ends with the input at hand: the framer's, and
                    // on a WebSocket the messages already decoded.
                    const bool burst_end = reader_.get_framer().buffered() == 0 &&
                                           !(framed_ && transport_ && transport_->input_buffered());
                    if (corked_ && burst_end && !framed_) {
                        if (!uncork_now()) co_await finish_uncork();
                    } else if (corked_ && (burst_end || out_.size() >= cork_flush_bytes) && !writing_ && transport_ &&
                               !out_.empty()) {
                        // ... or, when a packet's worth waits, at once by the
                        // writer (its first step runs here; a full socket
                        // does not stop the reading): the peer starts on
                        // those while we parse the rest (64 in flight: +70%).
                        writing_ = true;
                        asio::co_spawn(exec_, write_loop(shared_from_this(), false), asio::detached);
                    }
                } else if (ev == xml::frame_event::stream_close) {
                    corked_ = false;
                    add_state(session_state::input_closed);
                    if (phase_ == phase::closing) {
                        finish_close({make_error_code(errc::session_closed), "closed"});
                    } else {
                        // RFC 6120 4.4: answer with our closing tag, then close.
                        phase_ = phase::closing;
                        enqueue(closing_tag(), {});
                        add_state(session_state::output_closed);
                        finish_close({make_error_code(errc::peer_closed), "the server closed the stream"});
                    }
                    co_return;
                } else {
                    throw system_error(make_error_code(stream_errc::bad_format), "a second stream header");
                }
            }
        } catch (...) {
            failure = info_of(std::current_exception());
        }
        if (phase_ == phase::closed) co_return;
        if (phase_ == phase::closing &&
            (failure.code == errc::peer_closed || failure.code == asio::error::operation_aborted)) {
            finish_close({make_error_code(errc::session_closed), "closed"});
            co_return;
        }
        co_await fail_session(std::move(failure), true);
    }

    void on_element(xml::node e) {
        const auto name = e.name();
        const auto ns = reader_.element_ns(); // e's, resolved by the reader: no walk
        if (name == "error" && ns == xml::ns::stream) {
            peer_sent_stream_error_ = true;
            throw_if_stream_error(e);
        }
        const bool is_iq = name == "iq" && ns == xml::ns::client;
        stanza_attrs at;
        if (ns == xml::ns::client && (is_iq || name == "message" || name == "presence")) {
            at = attrs_of(e);
            if (received_) at.from = stamp_from(e, at.from);
        }
        std::optional<iq_type> t;
        if (is_iq) {
            t = iq_type_from_string(at.type);
            if (t == iq_type::result || t == iq_type::error) {
                on_reply(at.id, at.from, t == iq_type::error);
                return;
            }
            if (!t) {
                // 8.2.3: an IQ without a valid type deserves bad-request.
                reply_error(e, stanza_error(stanza_errc::bad_request, "missing or unknown IQ type"));
                return;
            }
        }
        // RFC 6120 8.4: an IQ get or set nobody handles is answered.
        const bool is_request = t == iq_type::get || t == iq_type::set;
        if (inline_handler_) {
            run_inline(is_request);
            return;
        }
        if (!handler_) {
            if (is_request) reply_error(e, stanza_error(stanza_errc::service_unavailable));
            return;
        }
        ++handlers_running_;
        // The call shares ownership of the handler: set_handler() or the
        // session's end must not destroy what a suspended call still uses
        // (a shared_ptr, not a std::function copy: no allocation per stanza).
        // The parsed tree itself goes to the handler: no copy.
        asio::co_spawn(exec_, run_handler(shared_from_this(), handler_, reader_.take_element(), is_request),
                       asio::detached);
    }

    // The inline handler's call, between two elements of the reader. The
    // handler may replace itself (set_inline_handler runs inline on the
    // strand): the call holds its own reference.
    void run_inline(bool is_request) {
        const auto handler = inline_handler_;
        incoming in(shared_from_this(), reader_.take_element());
        bool handled = false;
        bool failed = false;
        try {
            handled = (*handler)(in);
        } catch (...) {
            failed = true;
        }
        if (!is_request || (handled && !failed) || phase_ != phase::ready) return;
        // The handler may have moved the element out: release() kept its
        // envelope, which request() gives.
        auto req = to_element(in.request());
        reply_error(req.root(),
                    stanza_error(failed ? stanza_errc::internal_server_error : stanza_errc::service_unavailable));
    }

    asio::awaitable<void> run_handler(std::shared_ptr<session_impl> self, std::shared_ptr<const stanza_handler> handler,
                                      xml::element e, bool is_request) {
        // Kept for the automatic answer and the replies: the handler may
        // move the element out.
        stanza_envelope request = envelope_of(e.root());
        bool handled = false;
        bool failed = false;
        try {
            handled = co_await (*handler)(incoming(self, std::move(e), request));
        } catch (...) {
            failed = true;
        }
        if (is_request && !handled && phase_ == phase::ready) {
            auto cond = failed ? stanza_errc::internal_server_error : stanza_errc::service_unavailable;
            auto req = to_element(request);
            reply_error(req.root(), stanza_error(cond));
        }
        --handlers_running_;
        wakeup_.cancel();
    }

    void reply_error(xml::node request, const stanza_error& err) {
        auto reply = make_error_reply(request, err);
        if (!reply) return;
        std::string bytes;
        if (xml::write(reply.root(), bytes, content_ns())) return;
        if (!queue_has_room(bytes.size())) {
            // The server keeps asking and does not read the answers: queuing
            // more would grow without bound, dropping them would leave its
            // requests unanswered.
            end_session({make_error_code(errc::send_queue_full),
                         "the server sends requests but does not read the replies"}, true);
            return;
        }
        enqueue(std::move(bytes), {});
    }

    // 8.1.2.1: which 'from' may answer a request sent to `to`.
    bool is_self(std::string_view to, jid& to_jid) const {
        if (received_) {
            // The receiving side talks to its client: no 'to' means it.
            error_code ec;
            to_jid = to.empty() ? peer_ : jid::parse(to, ec);
            if (ec) to_jid = jid();
            return false;
        }
        if (to.empty()) return true;
        // Written as prepared (the usual case): no PRECIS run per request.
        if (to == bare_view() || to == address_.domainpart()) return true;
        error_code ec;
        to_jid = jid::parse(to, ec);
        if (ec) {
            to_jid = jid();
            return false;
        }
        return to_jid == address_.bare() || to_jid == address_.domain();
    }

    // Our bare JID as a view into address_ (no jid built).
    std::string_view bare_view() const noexcept {
        const auto full = address_.str();
        const auto res = address_.resourcepart();
        return res.empty() ? full : full.substr(0, full.size() - res.size() - 1);
    }

    bool sender_matches(const pending_iq& p, std::string_view from) const {
        if (p.to_self) {
            if (from.empty() || from == bare_view() || from == address_.domainpart() || from == address_.str()) return true;
            error_code ec;
            auto f = jid::parse(from, ec);
            return !ec && (f == address_.bare() || f == address_.domain() || f == address_);
        }
        // The text of the prepared 'to' matches without preparing 'from'.
        if (!from.empty() && from == p.to.str()) return true;
        error_code ec;
        auto f = jid::parse(from, ec);
        // Receiving side: 'from' is stamped with the full JID (8.1.2.1),
        // also for a request sent to the client's bare JID.
        return !ec && (f == p.to || (received_ && p.to == peer_.bare() && f == peer_));
    }

    void on_reply(std::string_view id, std::string_view from, bool is_error) {
        auto it = pending_.find(std::string(id));
        // Unknown ids and replies from the wrong sender (a third party
        // guessing ids) are dropped: they must not complete a request.
        if (it == pending_.end() || !sender_matches(it->second, from)) return;
        auto reply = reader_.take_element(); // the parsed tree itself: no copy
        error_code ec;
        if (is_error) {
            auto err = stanza_error::from_stanza(reply.root());
            ec = err ? err->code() : make_error_code(stanza_errc::undefined_condition);
        }
        finish_iq(it->first, it->second.gen, ec, std::move(reply), true);
    }

    // One timer for every IQ deadline, armed at the earliest: no timer (and
    // no timerfd update) per request. When it fires it fails what is due and
    // re-arms for the earliest left, so under steady traffic it fires about
    // once per iq_timeout.
    void arm_iq_timer(asio::steady_timer::time_point at) {
        if (at >= iq_timer_at_) return; // the armed wait comes first and re-arms
        iq_timer_at_ = at;
        iq_timer_.expires_at(at);
        std::weak_ptr<session_impl> weak = shared_from_this();
        iq_timer_.async_wait([weak](error_code ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->on_iq_timer();
        });
    }

    void on_iq_timer() {
        iq_timer_at_ = asio::steady_timer::time_point::max();
        const auto now = asio::steady_timer::clock_type::now();
        auto next = asio::steady_timer::time_point::max();
        std::vector<std::pair<std::string, std::uint64_t>> due;
        for (const auto& [id, p] : pending_) {
            if (p.deadline <= now) due.emplace_back(id, p.gen);
            else next = std::min(next, p.deadline);
        }
        for (const auto& [id, gen] : due) finish_iq(id, gen, make_error_code(errc::timeout), {});
        if (next != asio::steady_timer::time_point::max()) arm_iq_timer(next);
    }

    // `soon`: called by the reader, which completes the request at its next
    // safe point (run_ready) instead of through the scheduler.
    void finish_iq(const std::string& id, std::uint64_t gen, error_code ec, xml::element reply, bool soon = false) {
        auto it = pending_.find(id);
        if (it == pending_.end() || it->second.gen != gen) return;
        auto p = std::move(it->second);
        pending_.erase(it);
        auto slot = asio::get_associated_cancellation_slot(p.handler.h);
        if (slot.is_connected()) slot.clear();
        if (soon) ready_.push_back({std::move(p.handler), ec, std::move(reply)});
        else complete(std::move(p.handler), exec_, ec, std::move(reply));
    }

    // Completes the replies the reader matched, through each handler's own
    // executor: inline when that is where we run (a coroutine awaiting
    // send_iq on this thread resumes here, no scheduler trip and no
    // epoll_wait before its next request: bench/iq_roundtrip). Called only
    // where the reader holds nothing: right after an element is dispatched.
    // What the handlers send meanwhile is corked and written by the reader
    // at the end of the burst. An exception from a handler leaves through io_context::run,
    // as a posted handler's would.
    void run_ready() {
        if (ready_.empty()) return;
        auto batch = std::move(ready_);
        ready_.clear();
        corked_ = true;
        for (auto& r : batch) complete_here(std::move(r.h), exec_, r.ec, std::move(r.reply));
    }

    // The reader ended: what it matched completes the ordinary way.
    void post_ready() {
        auto batch = std::move(ready_);
        ready_.clear();
        for (auto& r : batch) complete(std::move(r.h), exec_, r.ec, std::move(r.reply));
    }

    // --- the end ---------------------------------------------------------------------------------

    // The orderly end: flush what is queued (our closing tag), then TLS
    // close_notify + FIN, each bounded by close_timeout.
    void finish_close(error_info why) {
        if (phase_ == phase::closed || ending_) return;
        ending_ = true;
        close_timer_.cancel();
        asio::co_spawn(exec_, [self = shared_from_this(), why = std::move(why)]() mutable -> asio::awaitable<void> {
            co_await self->wait_writer_idle(self->opts_.close_timeout);
            if (self->transport_ && self->phase_ != phase::closed) {
                asio::steady_timer deadline(self->exec_, self->opts_.close_timeout);
                std::weak_ptr<session_impl> weak = self;
                deadline.async_wait([weak](error_code ec) {
                    if (ec) return;
                    if (auto s = weak.lock(); s && s->transport_) s->transport_->close();
                });
                try {
                    co_await self->transport_->shutdown();
                } catch (...) {
                }
                deadline.cancel();
            }
            self->end_session(why, true);
        }, asio::detached);
    }

    void end_session(error_info why, bool connected) {
        if (phase_ == phase::closed) return;
        const bool was_connecting = phase_ == phase::connecting;
        phase_ = phase::closed;
        add_state(session_state::input_closed | session_state::output_closed);
        {
            std::lock_guard lk(info_mutex_);
            if (why.code && why.code != errc::session_closed) last_error_ = why;
        }
        if (conn_) {
            conn_->deadline.cancel();
            conn_->step.cancel();
        }
        close_timer_.cancel();
        iq_timer_.cancel();
        wakeup_.cancel();
        if (resolver_) resolver_->cancel();
        if (transport_) transport_->close();
        if (was_connecting && conn_) conn_->cancel.emit(asio::cancellation_type::terminal);
        post_ready(); // replies that arrived before the end keep their result
        // Every pending IQ fails with the reason the stream ended.
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [id, p] : pending) {
            auto slot = asio::get_associated_cancellation_slot(p.handler.h);
            if (slot.is_connected()) slot.clear();
            complete(std::move(p.handler), exec_, why.code ? why.code : make_error_code(errc::session_closed), xml::element());
        }
        auto waiters = std::move(write_waiters_);
        write_waiters_.clear();
        for (auto& w : waiters) complete(std::move(w), exec_, make_error_code(errc::session_closed));
        out_.clear();
        out_sizes_.clear();
        auto closers = std::move(close_waiters_);
        close_waiters_.clear();
        for (auto& c : closers) complete(std::move(c), exec_, error_code{});
        if (setup_ && setup_->on_end) {
            auto hook = std::move(setup_->on_end);
            setup_->on_end = nullptr;
            hook(*this);
        }
        if (connected && opts_.on_closed) opts_.on_closed(why);
    }

    // The session's strand, as an any_io_executor made once. Over an
    // io_context it is a strand of the io_context's own executor type: small
    // enough for any_io_executor's inline storage, so the copies, prefer()
    // and work guards Asio makes per operation allocate nothing (a strand of
    // any_io_executor needs a shared heap target for each; bench/iq_roundtrip).
    asio::any_io_executor exec_;
    session_options opts_;
    xml::reader reader_;
    jid address_;
    std::string domain_;       // the JID's domainpart (U-labels)
    std::string domain_ascii_; // the same with A-labels, for DNS and TLS
    std::unique_ptr<received_setup> setup_; // the receiving side's; null for a client
    const bool received_;
    const bool framed_; // an RFC 7395 WebSocket: <open/>, one element per message
    jid peer_;          // receiving side: the client (authenticated, then bound)
    std::string own_id_; // receiving side: the stream id we sent
    int headers_read_ = 0;
    bool message_ready_ = false; // a whole WebSocket message waits in reader_
    bool drained_ = false;       // the last read was short: wait before the next
    bool corked_ = false;        // the reader is in a burst: it writes the replies after it
    std::vector<ready_reply> ready_; // replies matched by the reader, completed at run_ready()
    xml::stream_header framed_header_;
    std::string see_other_; // <close see-other-uri/>
    std::unique_ptr<net::resolver> resolver_;
    std::unique_ptr<transport> transport_;
    std::atomic<std::uint16_t> state_bits_{0}; // session_state; read from any thread
    phase phase_ = phase::idle;
    xml::stream_header peer_header_;
    std::string mechanism_;
    bool header_sent_ = false;
    bool peer_sent_stream_error_ = false;
    bool writing_ = false;
    bool ending_ = false; // fail_session or finish_close has taken over the end
    std::string out_;
    std::vector<std::size_t> out_sizes_; // WebSocket: the length of each message in out_
    std::vector<tracked<void(error_code)>> write_waiters_;
    std::vector<tracked<void(error_code)>> close_waiters_;
    std::unordered_map<std::string, pending_iq> pending_;
    std::uint64_t iq_gen_ = 0;
    std::shared_ptr<const stanza_handler> handler_;
    std::shared_ptr<const inline_handler> inline_handler_; // or this one (set_inline_handler)
    std::size_t handlers_running_ = 0;
    struct connect_state {
        explicit connect_state(const asio::any_io_executor& s) : deadline(s), step(s) {}
        asio::steady_timer deadline; // connect_timeout
        asio::steady_timer step;     // step_timeout
        asio::cancellation_signal cancel;
    };
    std::unique_ptr<connect_state> conn_;
    asio::steady_timer close_timer_;
    asio::steady_timer iq_timer_;
    asio::steady_timer::time_point iq_timer_at_ = asio::steady_timer::time_point::max();
    // Never expires: cancel() wakes whoever waits for the writer to go idle
    // or for a handler call to end; each re-checks its own condition.
    asio::steady_timer wakeup_;
    error_code abort_reason_;
    error_info last_error_;
    mutable std::mutex info_mutex_;
};

stanza_envelope envelope_of(xml::node stanza) {
    stanza_envelope v;
    if (!stanza) return v;
    const auto name = stanza.name();
    const auto ns = stanza.ns(); // once: it walks the attributes (classify() would again)
    v.name = std::string(name);
    v.ns = std::string(ns);
    // One pass over the attributes (not four lookups: every request a
    // handler gets pays for this).
    const auto at = attrs_of(stanza);
    v.id = at.id;
    v.from = at.from;
    v.to = at.to;
    v.type = at.type;
    v.kind = !is_content_ns(ns)    ? stanza_kind::other
             : name == "message"  ? stanza_kind::message
             : name == "presence" ? stanza_kind::presence
             : name == "iq"       ? stanza_kind::iq
                                  : stanza_kind::other; // as classify()
    return v;
}

xml::element to_element(const stanza_envelope& v) {
    if (!v) return {};
    xml::element e(v.name, v.ns);
    auto r = e.root();
    for (auto [name, value] : {std::pair<const char*, const std::string*>{"id", &v.id}, {"from", &v.from},
                               {"to", &v.to}, {"type", &v.type}})
        if (!value->empty()) r.set_attr(name, *value);
    return e;
}

// The entry points take the work guard at once, in the caller's thread:
// from the moment an operation starts, its handler's executor has work.

// Runs `f` on the session's strand: at once when the caller runs on it
// already (a stanza handler, or a completion the reader ran inline), without
// the type-erased trip of asio::dispatch through any_io_executor.
template <class F>
void on_strand(const std::shared_ptr<session_impl>& s, F&& f) {
    if (const auto* st = s->executor().target<session_strand>(); st && st->running_in_this_thread()) {
        f();
        return;
    }
    asio::dispatch(s->executor(), std::forward<F>(f));
}

void start_send(const std::shared_ptr<session_impl>& s, xml::element e, send_handler handler) {
    tracked<void(error_code)> h(std::move(handler), s->executor());
    std::string bytes;
    if (auto ec = xml::write(e.root(), bytes, s->content_ns())) {
        complete(std::move(h), s->executor(), ec);
        return;
    }
    // dispatch: a handler on the strand (the common case) sends at once.
    on_strand(s, [s, bytes = std::move(bytes), h = std::move(h)]() mutable {
        s->send(std::move(bytes), std::move(h));
    });
}

void start_send_iq(const std::shared_ptr<session_impl>& s, xml::element iq, std::chrono::milliseconds timeout,
                   iq_handler handler) {
    tracked<void(error_code, xml::element)> h(std::move(handler), s->executor());
    on_strand(s, [s, iq = std::move(iq), timeout, h = std::move(h)]() mutable {
        s->send_iq(std::move(iq), timeout, std::move(h));
    });
}

namespace {
// Sends `reply`; an empty one (the request may not be answered that way)
// completes with invalid_argument.
void send_reply(const std::shared_ptr<session_impl>& s, xml::element reply, send_handler h) {
    if (!reply) {
        complete(tracked<void(error_code)>(std::move(h), s->executor()), s->executor(),
                 make_error_code(errc::invalid_argument));
        return;
    }
    start_send(s, std::move(reply), std::move(h));
}
} // namespace

namespace {
// The result for a request, written straight from its attributes (no
// tree): id kept, the addresses swapped. 8.2.3: only a get or set is
// answered.
void reply_with(const std::shared_ptr<session_impl>& s, bool answerable, std::string_view id, std::string_view from,
                std::string_view to, xml::element payload, send_handler handler) {
    if (!answerable) {
        send_reply(s, xml::element(), std::move(handler));
        return;
    }
    std::string out;
    out.reserve(64 + id.size() + from.size() + to.size());
    out += s->framed() ? "<iq xmlns='jabber:client' type='result'" // RFC 7395 3.3.1
                       : "<iq type='result'";
    auto attr = [&out](std::string_view name_eq, std::string_view v) {
        if (v.empty()) return error_code{};
        out += name_eq; // " id='"
        auto ec = xml::escape_attr(v, out);
        out += '\'';
        return ec;
    };
    error_code ec = attr(" id='", id);
    if (!ec) ec = attr(" to='", from);
    if (!ec) ec = attr(" from='", to);
    if (!ec && payload) {
        out += '>';
        ec = xml::write(payload.root(), out, xml::ns::client);
        out += "</iq>";
    } else {
        out += "/>";
    }
    tracked<void(error_code)> h(std::move(handler), s->executor());
    if (ec) {
        complete(std::move(h), s->executor(), ec);
        return;
    }
    on_strand(s, [s, out = std::move(out), h = std::move(h)]() mutable { s->send(std::move(out), std::move(h)); });
}
} // namespace

void start_reply(const std::shared_ptr<session_impl>& s, const stanza_envelope& request, xml::element payload,
                 send_handler handler) {
    const bool answerable = request.kind == stanza_kind::iq && (request.type == "get" || request.type == "set");
    reply_with(s, answerable, request.id, request.from, request.to, std::move(payload), std::move(handler));
}

void start_reply(const std::shared_ptr<session_impl>& s, xml::node request, xml::element payload,
                 send_handler handler) {
    // Read now, not kept from the reader's pass over the same attributes:
    // the handler may have changed the element since.
    const auto at = attrs_of(request);
    const bool answerable = request.name() == "iq" && (at.type == "get" || at.type == "set") &&
                            is_content_ns(request.ns());
    reply_with(s, answerable, at.id, at.from, at.to, std::move(payload), std::move(handler));
}

void start_reply_error(const std::shared_ptr<session_impl>& s, const stanza_envelope& request, const stanza_error& err,
                       send_handler h) {
    auto req = to_element(request);
    send_reply(s, req ? make_error_reply(req.root(), err) : xml::element(), std::move(h));
}

jid address_of(const session_impl& s) { return s.address(); }

// --- the receiving side (for lib/src/server.cpp) ------------------------------------------

std::shared_ptr<session_impl> make_received(asio::any_io_executor ex, session_options opts, received_setup setup) {
    return std::make_shared<session_impl>(std::move(ex), std::move(opts),
                                          std::make_unique<received_setup>(std::move(setup)));
}

void start_received(const std::shared_ptr<session_impl>& s, asio::ip::tcp::socket sock,
                    asio::any_completion_handler<void(error_code)> done) {
    tracked<void(error_code)> t(std::move(done), s->executor());
    asio::dispatch(s->executor(), [s, sock = std::move(sock), t = std::move(t)]() mutable {
        s->start(std::move(t), std::move(sock));
    });
}

void begin_reading(const std::shared_ptr<session_impl>& s) {
    asio::dispatch(s->executor(), [s] { s->begin_reading(); });
}

void kick(const std::shared_ptr<session_impl>& s, stream_errc cond, std::string text) {
    asio::dispatch(s->executor(), [s, cond, text = std::move(text)]() mutable { s->kick(cond, std::move(text)); });
}

session make_session(std::shared_ptr<session_impl> s) { return session(std::move(s)); }

std::shared_ptr<session_impl> shared_of(negotiation_stream& s) noexcept {
    auto* impl = dynamic_cast<session_impl*>(&s);
    return impl ? impl->shared_from_this() : nullptr;
}

error_info last_error_of(const session_impl& s) { return s.last_error(); }
asio::any_io_executor executor_of(const session_impl& s) { return s.executor(); }

} // namespace xmpp::detail

namespace xmpp {

session::session(asio::any_io_executor ex, session_options opts)
    : impl_(std::make_shared<detail::session_impl>(std::move(ex), std::move(opts))) {}

session::~session() {
    // Stop on the strand; the impl lives on in whatever coroutines still
    // hold it until they wind down.
    if (impl_) asio::dispatch(impl_->executor(), [impl = impl_] { impl->detach(); });
}

session& session::operator=(session&& other) noexcept {
    if (this != &other) {
        if (impl_) asio::dispatch(impl_->executor(), [impl = impl_] { impl->detach(); });
        impl_ = std::move(other.impl_);
    }
    return *this;
}

session::executor_type session::get_executor() const noexcept { return impl_->executor(); }

void session::set_handler(stanza_handler h) {
    // On the strand: the reader reads handler_ there.
    asio::dispatch(impl_->executor(), [impl = impl_, h = std::move(h)]() mutable { impl->set_handler(std::move(h)); });
}

void session::set_inline_handler(inline_handler h) {
    asio::dispatch(impl_->executor(), [impl = impl_, h = std::move(h)]() mutable { impl->set_inline_handler(std::move(h)); });
}

void session::start_connect(const std::shared_ptr<detail::session_impl>& impl,
                            asio::any_completion_handler<void(error_code)> h) {
    detail::tracked<void(error_code)> t(std::move(h), impl->executor());
    asio::dispatch(impl->executor(), [impl, t = std::move(t)]() mutable { impl->connect(std::move(t)); });
}

void session::start_close(const std::shared_ptr<detail::session_impl>& impl,
                          asio::any_completion_handler<void(error_code)> h) {
    detail::tracked<void(error_code)> t(std::move(h), impl->executor());
    asio::post(impl->executor(), [impl, t = std::move(t)]() mutable { impl->close(std::move(t)); });
}

jid session::address() const { return impl_->address(); }
jid session::peer_address() const { return impl_->peer(); }
bool session::is_received() const noexcept { return impl_->received(); }
session_state session::state() const noexcept { return impl_->state(); }
error_info session::last_error() const { return impl_->last_error(); }
std::string session::stream_id() const { return impl_->stream_id(); }
std::string session::sasl_mechanism() const { return impl_->mechanism(); }

} // namespace xmpp
