// xmpp::session: dialing, negotiation I/O, the writer queue, the reader loop
// and IQ matching. All template-heavy Asio code of the session lives in this
// translation unit; the public header only type-erases handlers.
#include <xmpp/session.hpp>

#include <xmpp/negotiator.hpp>
#include <xmpp/stanza_error.hpp>
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
template <class Sig>
struct tracked {
    asio::any_completion_handler<Sig> h;
    asio::any_completion_executor work;

    tracked() = default;
    tracked(asio::any_completion_handler<Sig> handler, const asio::any_io_executor& fallback)
        : work(asio::prefer(asio::get_associated_executor(handler, fallback),
                            asio::execution::outstanding_work.tracked)) {
        // swap, not move-assignment: Boost 1.81's any_completion_handler
        // move-assignment wraps the handler in itself without end.
        h.swap(handler);
    }
    tracked(tracked&&) noexcept = default;
    tracked& operator=(tracked&&) = delete; // see above
    explicit operator bool() const noexcept { return static_cast<bool>(h); }
};

// Completes a stored handler later, through its own executor, never inside
// the caller's stack (and never while we iterate our containers). Not
// asio::append + post: with Boost 1.81 that path copies the
// any_completion_handler through its converting constructor, which wraps it
// in itself without end. Post to our strand, then run the handler through
// its own associated executor.
template <class Sig, class... Args>
void complete(tracked<Sig> t, const asio::any_io_executor& ex, Args... args) {
    // The work guard lives until the handler has been handed over.
    asio::post(ex, [t = std::move(t), ex, args = std::make_tuple(std::move(args)...)]() mutable {
        auto hex = asio::get_associated_executor(t.h, ex);
        hex.execute([h = std::move(t.h), args = std::move(args)]() mutable { std::apply(std::move(h), std::move(args)); });
    });
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

} // namespace

class session_impl final : public negotiation_io, public std::enable_shared_from_this<session_impl> {
public:
    session_impl(asio::any_io_executor ex, session_options opts)
        : strand_(asio::make_strand(std::move(ex))),
          opts_(std::move(opts)),
          reader_(opts_.limits),
          address_(opts_.address),
          close_timer_(strand_),
          wakeup_(strand_, asio::steady_timer::time_point::max()) {}

    asio::any_io_executor executor() const { return strand_; }

    // --- public operations (called on the strand) ----------------------------

    void connect(tracked<void(error_code)> h) {
        if (phase_ != phase::idle) {
            complete(std::move(h), strand_, make_error_code(errc::already_connected));
            return;
        }
        phase_ = phase::connecting;
        auto slot = asio::get_associated_cancellation_slot(h.h);
        if (slot.is_connected()) {
            std::weak_ptr<session_impl> weak = shared_from_this();
            slot.assign([weak, ex = strand_](asio::cancellation_type) {
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
        conn_ = std::make_unique<connect_state>(strand_);
        arm(conn_->deadline, opts_.connect_timeout);
        auto done = [self = shared_from_this(), h = std::move(h)](std::exception_ptr ep) mutable {
            self->conn_->deadline.cancel();
            self->conn_->step.cancel();
            // Not here: the signal's slot belongs to the operation completing now.
            asio::post(self->strand_, [self] { self->conn_.reset(); });
            auto s = asio::get_associated_cancellation_slot(h.h);
            if (s.is_connected()) s.clear();
            if (!ep && self->phase_ == phase::connecting) {
                self->phase_ = phase::ready;
                self->start_reading();
                complete(std::move(h), self->strand_, error_code{});
                return;
            }
            error_info why{make_error_code(errc::session_closed), "closed while connecting"};
            if (ep) why = info_of(ep);
            // A deadline or a cancellation shows as operation_aborted below.
            if (self->abort_reason_) why.code = self->abort_reason_;
            asio::co_spawn(self->strand_, self->fail_session(std::move(why), false),
                           [self, h = std::move(h)](std::exception_ptr) mutable {
                               complete(std::move(h), self->strand_, self->last_error().code);
                           });
        };
        asio::co_spawn(strand_, connect_main(), asio::bind_cancellation_slot(conn_->cancel.slot(), std::move(done)));
    }

    void send(std::string bytes, tracked<void(error_code)> h) {
        if (phase_ != phase::ready) {
            complete(std::move(h), strand_, make_error_code(errc::not_connected));
            return;
        }
        if (!queue_has_room(bytes.size())) {
            complete(std::move(h), strand_, make_error_code(errc::send_queue_full));
            return;
        }
        enqueue(std::move(bytes), std::move(h));
    }

    void send_iq(xml::element iq, std::chrono::milliseconds timeout, tracked<void(error_code, xml::element)> h) {
        auto fail = [&](error_code ec) { complete(std::move(h), strand_, ec, xml::element()); };
        if (phase_ != phase::ready) return fail(make_error_code(errc::not_connected));
        auto root = iq.root();
        iq_view v(root);
        if (!root || root.name() != "iq" || !v.is_request()) return fail(make_error_code(errc::invalid_argument));
        std::string id(v.id());
        if (id.empty()) {
            id = new_id();
            root.set_attr("id", id);
        }
        if (pending_.count(id)) return fail(make_error_code(errc::invalid_argument));
        std::string bytes;
        if (auto ec = xml::write(root, bytes, xml::ns::client)) return fail(ec);
        if (!queue_has_room(bytes.size())) return fail(make_error_code(errc::send_queue_full));
        jid to;
        const bool to_self = is_self(v.to(), to);
        // A 'to' that is not a JID can never be answered by a JID.
        if (!to_self && to.empty()) return fail(make_error_code(errc::invalid_argument));
        // The generation tells this request from a later one that reuses
        // its id, for a cancellation or a timer that was already on its way.
        const auto gen = ++iq_gen_;
        auto slot = asio::get_associated_cancellation_slot(h.h);
        if (slot.is_connected()) {
            std::weak_ptr<session_impl> weak = shared_from_this();
            slot.assign([weak, id, gen, ex = strand_](asio::cancellation_type) {
                asio::post(ex, [weak, id, gen] {
                    if (auto self = weak.lock()) self->finish_iq(id, gen, asio::error::operation_aborted, {});
                });
            });
        }
        pending_iq p(std::move(h));
        p.to = std::move(to);
        p.to_self = to_self;
        p.gen = gen;
        p.timer = std::make_unique<asio::steady_timer>(strand_);
        p.timer->expires_after(timeout.count() > 0 ? timeout : opts_.iq_timeout);
        std::weak_ptr<session_impl> weak = shared_from_this();
        p.timer->async_wait([weak, id, gen](error_code ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->finish_iq(id, gen, make_error_code(errc::timeout), {});
        });
        // Registered before the write: a reply can never overtake it.
        pending_.emplace(id, std::move(p));
        enqueue(std::move(bytes), {});
    }

    void close(tracked<void(error_code)> h) {
        switch (phase_) {
        case phase::idle:
        case phase::closed:
            complete(std::move(h), strand_, error_code{});
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
        abort_reason_ = make_error_code(errc::session_closed);
        // No on_closed: what it would tell belongs to an object that is gone.
        end_session({make_error_code(errc::session_closed), "session destroyed"}, false);
    }

    void set_handler(stanza_handler h) {
        handler_ = h ? std::make_shared<const stanza_handler>(std::move(h)) : nullptr;
    }

    // --- negotiation_stream ------------------------------------------------------

    asio::awaitable<void> send(xml::node element) override {
        std::string bytes;
        if (auto ec = xml::write(element, bytes, xml::ns::client)) throw system_error(ec, "cannot serialize element");
        co_await write_now(bytes);
    }

    asio::awaitable<void> send_raw(std::string_view xml_text) override { co_await write_now(xml_text); }

    asio::awaitable<xml::element> receive() override {
        auto ev = co_await read_event(true);
        if (ev == xml::frame_event::stream_close) {
            add_state(session_state::input_closed);
            throw system_error(make_error_code(errc::peer_closed), "the server closed the stream during negotiation");
        }
        if (ev == xml::frame_event::stream_open)
            throw system_error(make_error_code(stream_errc::bad_format), "a second stream header");
        auto e = xml::element::copy_of(reader_.element());
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
    bool is_initiator() const noexcept override { return true; }
    // Initiating side: the server's domain (stopgap until the receiving
    // session lands; see negotiation_stream::peer_address()).
    const jid& peer_address() const noexcept override { return peer_; }
    void set_peer_address(jid j) override { peer_ = std::move(j); }
    void set_auth_mechanism(std::string name) override {
        std::lock_guard lk(info_mutex_);
        mechanism_ = std::move(name);
    }

    // --- negotiation_io --------------------------------------------------------

    asio::awaitable<void> open_stream() override {
        reader_.reset();
        std::string out;
        xml::stream_header h;
        h.to = domain_;
        // RFC 6120 4.7.1: 'from' only once the stream is protected.
        if (has_all(state(), session_state::secure)) h.from = std::string(address_.bare().str());
        h.version = "1.0";
        h.lang = "en";
        h.default_ns = std::string(xml::ns::client);
        h.prefixes = {{"stream", std::string(xml::ns::stream)}};
        xml::write_stream_header(h, out);
        header_sent_ = true;
        co_await write_now(out);
    }

    asio::awaitable<xml::stream_header> receive_header() override {
        auto ev = co_await read_event(true);
        if (ev != xml::frame_event::stream_open)
            throw system_error(make_error_code(errc::bad_stream_header), "expected the server's stream header");
        std::lock_guard lk(info_mutex_);
        peer_header_ = reader_.header();
        co_return peer_header_;
    }

    void replace_transport(std::unique_ptr<transport> t) override {
        transport_ = std::move(t);
        add_state(session_state::secure);
    }

    void add_state(session_state bits) override {
        state_bits_.fetch_or(static_cast<std::uint16_t>(bits));
    }

    // --- accessors (any thread) ------------------------------------------------------

    jid address() const { std::lock_guard lk(info_mutex_); return address_; }
    error_info last_error() const { std::lock_guard lk(info_mutex_); return last_error_; }
    std::string stream_id() const { std::lock_guard lk(info_mutex_); return peer_header_.id; }
    std::string mechanism() const { std::lock_guard lk(info_mutex_); return mechanism_; }

private:
    enum class phase { idle, connecting, ready, closing, closed };

    struct pending_iq {
        explicit pending_iq(tracked<void(error_code, xml::element)> h) : handler(std::move(h)) {}
        jid to;               // the request's 'to', prepared
        bool to_self = false; // to our account or our server (8.1.2.1)
        std::uint64_t gen = 0;
        std::unique_ptr<asio::steady_timer> timer;
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
        peer_ = opts_.address.domain();
        if (domain_.empty()) throw system_error(make_error_code(errc::invalid_argument), "the account JID has no domain");
        // The JID holds U-labels; DNS, SNI and the certificate check need
        // A-labels (RFC 5890, RFC 6125 6.4.2). The stream header keeps the
        // JID's form (RFC 7622 3.2).
        error_code idn_ec;
        domain_ascii_ = domain_to_ascii(opts_.address, idn_ec);
        if (idn_ec) throw system_error(idn_ec, "the account's domain has no DNS form");
        resolver_ = std::make_unique<net::resolver>(strand_, opts_.dns);

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

        client_features_config cfg;
        cfg.credentials.username = std::string(opts_.address.localpart());
        cfg.credentials.password = opts_.password;
        cfg.credentials.authzid = opts_.authzid;
        cfg.sasl = opts_.sasl;
        cfg.allow_plaintext = opts_.allow_plaintext;
        cfg.tls = std::move(starttls_ctx);
        cfg.resource = std::string(opts_.address.resourcepart());
        auto neg = make_client_negotiator(cfg, opts_.extra_features);
        co_await neg->run(*this);
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

    asio::awaitable<void> write_now(std::string_view bytes) {
        if (!transport_) throw system_error(make_error_code(errc::session_closed), "no transport");
        if (opts_.on_write) opts_.on_write(bytes);
        co_await transport_->write(bytes);
    }

    // The next framer event; reads as needed. `step_deadline`: each wait for
    // input is bounded by options.step_timeout (negotiation).
    asio::awaitable<xml::frame_event> read_event(bool step_deadline) {
        for (;;) {
            error_code ec;
            auto ev = reader_.next(ec);
            if (ev != xml::frame_event::need_more) co_return ev;
            if (ec) throw system_error(ec, std::string(reader_.error_text()));
            if (!transport_) throw system_error(make_error_code(errc::session_closed), "no transport");
            auto buf = reader_.prepare(opts_.read_size);
            std::size_t n = transport_->read_some(asio::buffer(buf.data(), std::min(buf.size(), opts_.read_size)), ec);
            if (ec == asio::error::would_block) {
                reader_.commit(0);
                // Idle: hold no read buffer and no parse tree while waiting.
                reader_.shrink();
                // Negotiation only: conn_ lives until the connect is over.
                if (step_deadline && conn_) arm(conn_->step, opts_.step_timeout);
                co_await transport_->wait_read();
                if (step_deadline && conn_) conn_->step.cancel();
                continue;
            }
            if (ec == asio::error::eof)
                throw system_error(make_error_code(errc::peer_closed), "the server closed the connection");
            if (ec) throw system_error(ec, "read failed");
            if (opts_.on_read) opts_.on_read(std::string_view(buf.data(), n));
            reader_.commit(n);
        }
    }

    static void throw_if_stream_error(xml::node e) {
        if (auto err = stream_error::from_element(e)) {
            std::string text = "stream error from the server";
            if (!err->text.empty()) text += ": " + err->text;
            throw system_error(err->code(), text);
        }
    }

    std::string closing_tag() const {
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
        {
            std::lock_guard lk(info_mutex_);
            last_error_ = why;
        }
        if (transport_ && header_sent_ && phase_ != phase::closed && !abort_reason_ && !ending_) {
            ending_ = true;
            std::string out;
            if (why.code.category() == stream_category() && !peer_sent_stream_error_) {
                stream_error se;
                se.condition = static_cast<stream_errc>(why.code.value());
                out += xml::to_string(se.to_element().root());
            }
            if (!has_all(state(), session_state::output_closed)) out += closing_tag();
            add_state(session_state::output_closed);
            out_ += out;
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

    void enqueue(std::string bytes, tracked<void(error_code)> h) {
        out_ += bytes;
        if (h) write_waiters_.push_back(std::move(h));
        start_writer();
    }

    void start_writer() {
        if (!writing_ && !out_.empty() && transport_) {
            writing_ = true;
            asio::co_spawn(strand_, write_loop(shared_from_this()), asio::detached);
        }
    }

    asio::awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<session_impl> self) {
        // co_spawn runs the first step inline: yield once, so that sends
        // already queued on the strand join the first write.
        co_await asio::post(strand_, asio::use_awaitable);
        error_info failure;
        while (!out_.empty() && phase_ != phase::closed) {
            std::string batch;
            batch.swap(out_); // everything queued so far goes out in one write
            auto waiters = std::move(write_waiters_);
            write_waiters_.clear();
            error_code ec;
            try {
                co_await write_now(batch);
            } catch (...) {
                failure = info_of(std::current_exception());
                ec = failure.code;
            }
            // A write cut short by the session's own end is not a write
            // error: the stream ended first.
            if (ec && (ending_ || phase_ == phase::closed)) ec = make_error_code(errc::session_closed);
            for (auto& w : waiters) complete(std::move(w), strand_, ec);
            if (ec) break;
        }
        writing_ = false;
        wakeup_.cancel();
        if (failure.code && !ending_) {
            if (failure.text.empty() || failure.code != errc::callback_failed) failure.text = "write failed: " + failure.text;
            end_session(std::move(failure), true);
        }
    }

    // Waits until the writer has nothing in flight, at most `limit`; past
    // it the transport is closed, which ends the write.
    asio::awaitable<void> wait_writer_idle(std::chrono::milliseconds limit) {
        if (!writing_) co_return;
        asio::steady_timer deadline(strand_, limit);
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
        asio::co_spawn(strand_, read_loop(shared_from_this()), asio::detached);
    }

    asio::awaitable<void> read_loop([[maybe_unused]] std::shared_ptr<session_impl> self) {
        error_info failure;
        try {
            for (;;) {
                // Back-pressure: too many handlers running, read no further.
                while (handlers_running_ >= std::max<std::size_t>(opts_.max_handlers, 1) && phase_ != phase::closed)
                    co_await wakeup_.async_wait(asio::as_tuple(asio::use_awaitable));
                if (phase_ == phase::closed) co_return;
                auto ev = co_await read_event(false);
                if (phase_ == phase::closed) co_return;
                if (ev == xml::frame_event::element) {
                    on_element(reader_.element());
                } else if (ev == xml::frame_event::stream_close) {
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
        if (e.name() == "error" && e.ns() == xml::ns::stream) {
            peer_sent_stream_error_ = true;
            throw_if_stream_error(e);
        }
        if (e.name() == "iq" && e.ns() == xml::ns::client) {
            iq_view v(e);
            auto t = v.type();
            if (t == iq_type::result || t == iq_type::error) {
                on_reply(v);
                return;
            }
            if (!t) {
                // 8.2.3: an IQ without a valid type deserves bad-request.
                reply_error(e, stanza_error(stanza_errc::bad_request, "missing or unknown IQ type"));
                return;
            }
        }
        if (!handler_) {
            if (iq_view(e).is_request()) reply_error(e, stanza_error(stanza_errc::service_unavailable));
            return;
        }
        ++handlers_running_;
        // The call shares ownership of the handler: set_handler() or the
        // session's end must not destroy what a suspended call still uses
        // (a shared_ptr, not a std::function copy: no allocation per stanza).
        asio::co_spawn(strand_, run_handler(shared_from_this(), handler_, xml::element::copy_of(e)), asio::detached);
    }

    asio::awaitable<void> run_handler(std::shared_ptr<session_impl> self, std::shared_ptr<const stanza_handler> handler,
                                      xml::element e) {
        // Kept for the automatic answer: the handler may move the element out.
        xml::element request;
        if (iq_view(e.root()).is_request()) request = envelope_of(e.root());
        bool handled = false;
        bool failed = false;
        try {
            handled = co_await (*handler)(incoming(self, std::move(e)));
        } catch (...) {
            failed = true;
        }
        if (request && !handled && phase_ == phase::ready) {
            auto cond = failed ? stanza_errc::internal_server_error : stanza_errc::service_unavailable;
            reply_error(request.root(), stanza_error(cond));
        }
        --handlers_running_;
        wakeup_.cancel();
    }

    void reply_error(xml::node request, const stanza_error& err) {
        auto reply = make_error_reply(request, err);
        if (!reply) return;
        std::string bytes;
        if (xml::write(reply.root(), bytes, xml::ns::client)) return;
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
        if (to.empty()) return true;
        error_code ec;
        to_jid = jid::parse(to, ec);
        if (ec) {
            to_jid = jid();
            return false;
        }
        return to_jid == address_.bare() || to_jid == address_.domain();
    }

    bool sender_matches(const pending_iq& p, std::string_view from) const {
        if (p.to_self) {
            if (from.empty()) return true;
            error_code ec;
            auto f = jid::parse(from, ec);
            return !ec && (f == address_.bare() || f == address_.domain() || f == address_);
        }
        error_code ec;
        auto f = jid::parse(from, ec);
        return !ec && f == p.to;
    }

    void on_reply(const iq_view& v) {
        auto it = pending_.find(std::string(v.id()));
        // Unknown ids and replies from the wrong sender (a third party
        // guessing ids) are dropped: they must not complete a request.
        if (it == pending_.end() || !sender_matches(it->second, v.from())) return;
        auto reply = xml::element::copy_of(v.node());
        error_code ec;
        if (v.is_error()) {
            auto err = stanza_error::from_stanza(reply.root());
            ec = err ? err->code() : make_error_code(stanza_errc::undefined_condition);
        }
        finish_iq(it->first, it->second.gen, ec, std::move(reply));
    }

    void finish_iq(const std::string& id, std::uint64_t gen, error_code ec, xml::element reply) {
        auto it = pending_.find(id);
        if (it == pending_.end() || it->second.gen != gen) return;
        auto p = std::move(it->second);
        pending_.erase(it);
        if (p.timer) p.timer->cancel();
        auto slot = asio::get_associated_cancellation_slot(p.handler.h);
        if (slot.is_connected()) slot.clear();
        complete(std::move(p.handler), strand_, ec, std::move(reply));
    }

    // --- the end ---------------------------------------------------------------------------------

    // The orderly end: flush what is queued (our closing tag), then TLS
    // close_notify + FIN, each bounded by close_timeout.
    void finish_close(error_info why) {
        if (phase_ == phase::closed || ending_) return;
        ending_ = true;
        close_timer_.cancel();
        asio::co_spawn(strand_, [self = shared_from_this(), why = std::move(why)]() mutable -> asio::awaitable<void> {
            co_await self->wait_writer_idle(self->opts_.close_timeout);
            if (self->transport_ && self->phase_ != phase::closed) {
                asio::steady_timer deadline(self->strand_, self->opts_.close_timeout);
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
        wakeup_.cancel();
        if (resolver_) resolver_->cancel();
        if (transport_) transport_->close();
        if (was_connecting && conn_) conn_->cancel.emit(asio::cancellation_type::terminal);
        // Every pending IQ fails with the reason the stream ended.
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [id, p] : pending) {
            if (p.timer) p.timer->cancel();
            auto slot = asio::get_associated_cancellation_slot(p.handler.h);
            if (slot.is_connected()) slot.clear();
            complete(std::move(p.handler), strand_, why.code ? why.code : make_error_code(errc::session_closed), xml::element());
        }
        auto waiters = std::move(write_waiters_);
        write_waiters_.clear();
        for (auto& w : waiters) complete(std::move(w), strand_, make_error_code(errc::session_closed));
        out_.clear();
        auto closers = std::move(close_waiters_);
        close_waiters_.clear();
        for (auto& c : closers) complete(std::move(c), strand_, error_code{});
        if (connected && opts_.on_closed) opts_.on_closed(why);
    }

    asio::strand<asio::any_io_executor> strand_;
    session_options opts_;
    xml::reader reader_;
    jid address_;
    jid peer_;                 // the server's domain
    std::string domain_;       // the JID's domainpart (U-labels)
    std::string domain_ascii_; // the same with A-labels, for DNS and TLS
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
    std::vector<tracked<void(error_code)>> write_waiters_;
    std::vector<tracked<void(error_code)>> close_waiters_;
    std::unordered_map<std::string, pending_iq> pending_;
    std::uint64_t iq_gen_ = 0;
    std::shared_ptr<const stanza_handler> handler_;
    std::size_t handlers_running_ = 0;
    struct connect_state {
        explicit connect_state(const asio::strand<asio::any_io_executor>& s) : deadline(s), step(s) {}
        asio::steady_timer deadline; // connect_timeout
        asio::steady_timer step;     // step_timeout
        asio::cancellation_signal cancel;
    };
    std::unique_ptr<connect_state> conn_;
    asio::steady_timer close_timer_;
    // Never expires: cancel() wakes whoever waits for the writer to go idle
    // or for a handler call to end; each re-checks its own condition.
    asio::steady_timer wakeup_;
    error_code abort_reason_;
    error_info last_error_;
    mutable std::mutex info_mutex_;
};

xml::element envelope_of(xml::node stanza) {
    if (!stanza) return {};
    auto e = xml::element::copy_of(stanza);
    auto root = e.root();
    while (auto c = root.first_child()) root.remove_child(c);
    return e;
}

// The entry points take the work guard at once, in the caller's thread:
// from the moment an operation starts, its handler's executor has work.

void start_send(const std::shared_ptr<session_impl>& s, xml::element e, send_handler handler) {
    tracked<void(error_code)> h(std::move(handler), s->executor());
    std::string bytes;
    if (auto ec = xml::write(e.root(), bytes, xml::ns::client)) {
        complete(std::move(h), s->executor(), ec);
        return;
    }
    asio::post(s->executor(), [s, bytes = std::move(bytes), h = std::move(h)]() mutable {
        s->send(std::move(bytes), std::move(h));
    });
}

void start_send_iq(const std::shared_ptr<session_impl>& s, xml::element iq, std::chrono::milliseconds timeout,
                   iq_handler handler) {
    tracked<void(error_code, xml::element)> h(std::move(handler), s->executor());
    asio::post(s->executor(), [s, iq = std::move(iq), timeout, h = std::move(h)]() mutable {
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

void start_reply(const std::shared_ptr<session_impl>& s, xml::node request, xml::element payload, send_handler h) {
    auto reply = request ? make_iq_result(iq_view(request)) : xml::element();
    if (reply && payload) reply.root().append_copy(payload.root());
    send_reply(s, std::move(reply), std::move(h));
}

void start_reply_error(const std::shared_ptr<session_impl>& s, xml::node request, const stanza_error& err,
                       send_handler h) {
    send_reply(s, request ? make_error_reply(request, err) : xml::element(), std::move(h));
}

jid address_of(const session_impl& s) { return s.address(); }

} // namespace xmpp::detail

namespace xmpp {

session::session(asio::any_io_executor ex, session_options opts)
    : impl_(std::make_shared<detail::session_impl>(std::move(ex), std::move(opts))) {}

session::~session() {
    // Stop on the strand; the impl lives on in whatever coroutines still
    // hold it until they wind down.
    asio::dispatch(impl_->executor(), [impl = impl_] { impl->detach(); });
}

session::executor_type session::get_executor() const noexcept { return impl_->executor(); }

void session::set_handler(stanza_handler h) {
    // On the strand: the reader reads handler_ there.
    asio::dispatch(impl_->executor(), [impl = impl_, h = std::move(h)]() mutable { impl->set_handler(std::move(h)); });
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
session_state session::state() const noexcept { return impl_->state(); }
error_info session::last_error() const { return impl_->last_error(); }
std::string session::stream_id() const { return impl_->stream_id(); }
std::string session::sasl_mechanism() const { return impl_->mechanism(); }

} // namespace xmpp
