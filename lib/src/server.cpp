// xmpp::server: listeners, the receiving negotiators, the registry of bound
// resources. The sessions themselves are session_impl (lib/src/session.cpp),
// reached through detail/received.hpp.
#include <xmpp/server.hpp>

#include "detail/received.hpp"

#include <xmpp/negotiator.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stanza_error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace xmpp {

using boost::system::system_error;
using tcp = asio::ip::tcp;

struct server::impl : std::enable_shared_from_this<server::impl> {
    impl(asio::any_io_executor ex, server_options o) : ex_(std::move(ex)), strand_(asio::make_strand(ex_)), opts_(std::move(o)) {}

    struct listener {
        std::unique_ptr<tcp::acceptor> acceptor;
        listener_kind kind;
        bool running = false;
    };

    asio::any_io_executor ex_;
    asio::strand<asio::any_io_executor> strand_;
    server_options opts_;
    session_acceptor on_session_;
    std::shared_ptr<negotiator> tcp_negotiator_, ws_negotiator_;
    std::mutex listen_mutex_; // listeners_, on_session_, the negotiators, started_
    std::deque<listener> listeners_;
    bool started_ = false;
    std::atomic<bool> stopped_{false};

    mutable std::mutex mutex_; // the tables below; touched from every session's strand
    std::unordered_map<const detail::session_impl*, std::weak_ptr<detail::session_impl>> pending_;
    std::map<std::string, std::weak_ptr<detail::session_impl>> bound_;        // full JID -> session
    std::unordered_map<const detail::session_impl*, std::string> bound_by_;    // session -> full JID
    std::atomic<std::size_t> pending_count_{0}, bound_count_{0};

    void build_negotiators() {
        std::weak_ptr<impl> weak = shared_from_this();
        auto claim = [weak](negotiation_stream& s, jid bare, std::string requested) -> asio::awaitable<std::string> {
            auto self = weak.lock();
            if (!self) throw system_error(make_error_code(stanza_errc::internal_server_error));
            co_return self->claim(s, bare, std::move(requested));
        };
        auto bind = bind_server_feature(claim);
        const bool need_tls = !opts_.allow_plaintext;
        auto sasl = sasl_server_feature(opts_.sasl, need_tls);
        std::vector<std::shared_ptr<const stream_feature>> tcp_features, ws_features;
        // RFC 7395 4: never STARTTLS on a WebSocket.
        if (opts_.tls) tcp_features.push_back(starttls_server_feature(*opts_.tls, need_tls));
        for (auto* v : {&tcp_features, &ws_features}) {
            v->push_back(sasl);
            v->push_back(bind);
            for (auto& f : opts_.extra_features) v->push_back(f);
        }
        tcp_negotiator_ = make_server_negotiator(opts_.domain, std::move(tcp_features));
        ws_negotiator_ = make_server_negotiator(opts_.domain, std::move(ws_features));
    }

    // RFC 6120 7.7.2.2: the conflict policy.
    std::string claim(negotiation_stream& s, const jid& bare, std::string requested) {
        auto me = detail::shared_of(s);
        if (!me) throw system_error(make_error_code(stanza_errc::internal_server_error));
        std::shared_ptr<detail::session_impl> replaced;
        std::string resource = requested.empty() ? new_id() : std::move(requested);
        {
            std::lock_guard lk(mutex_);
            for (int tries = 0;; ++tries) {
                boost::system::error_code ec;
                auto full = bare.with_resource(resource, ec);
                if (ec) throw system_error(make_error_code(stanza_errc::bad_request));
                auto it = bound_.find(std::string(full.str()));
                auto old = it == bound_.end() ? nullptr : it->second.lock();
                if (old && old != me) {
                    if (opts_.conflict == bind_conflict::refuse_new)
                        throw system_error(make_error_code(stanza_errc::conflict));
                    if (opts_.conflict == bind_conflict::rename_new && tries < 8) {
                        resource = new_id();
                        continue;
                    }
                    replaced = std::move(old);
                    bound_by_.erase(replaced.get());
                }
                bound_[std::string(full.str())] = me;
                if (!bound_by_.count(me.get())) bound_count_.fetch_add(1);
                bound_by_[me.get()] = std::string(full.str());
                break;
            }
        }
        if (replaced) {
            bound_count_.fetch_sub(1);
            detail::kick(replaced, stream_errc::conflict, "replaced by a new session for the same resource");
        }
        return resource;
    }

    void session_ended(const detail::session_impl& s) {
        std::lock_guard lk(mutex_);
        if (pending_.erase(&s)) pending_count_.fetch_sub(1);
        if (auto it = bound_by_.find(&s); it != bound_by_.end()) {
            if (auto b = bound_.find(it->second); b != bound_.end() && b->second.lock().get() == &s) bound_.erase(b);
            bound_by_.erase(it);
            bound_count_.fetch_sub(1);
        }
    }

    // listen_mutex_ held.
    void start_listener(listener& l) {
        if (l.running || !started_ || stopped_) return;
        l.running = true;
        asio::co_spawn(strand_, accept_loop(shared_from_this(), l.acceptor.get(), l.kind), asio::detached);
    }

    // `self` keeps the server's state alive while the loop runs.
    asio::awaitable<void> accept_loop([[maybe_unused]] std::shared_ptr<impl> self, tcp::acceptor* acceptor,
                                      listener_kind kind) {
        asio::steady_timer backoff(strand_);
        for (;;) {
            auto [ec, sock] = co_await acceptor->async_accept(asio::as_tuple(asio::use_awaitable));
            if (stopped_ || ec == asio::error::operation_aborted) co_return;
            if (ec) {
                // EMFILE and friends: the table is full for now, try again soon.
                backoff.expires_after(std::chrono::milliseconds(50));
                co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
                continue;
            }
            if (pending_count_.load() >= opts_.max_pending || bound_count_.load() >= opts_.max_sessions) {
                // Over a limit: close at once, costing nothing more.
                boost::system::error_code ignored;
                sock.close(ignored);
                continue;
            }
            accept_one(std::move(sock), kind);
        }
    }

    void accept_one(tcp::socket sock, listener_kind kind) {
        detail::received_setup setup;
        setup.domain = opts_.domain;
        setup.kind = kind;
        setup.tls = opts_.tls;
        setup.ws = opts_.ws;
        setup.see_other_uri = opts_.ws_see_other_uri;
        const bool ws = kind == listener_kind::ws || kind == listener_kind::wss;
        {
            std::lock_guard lk(listen_mutex_);
            setup.negotiation = ws ? ws_negotiator_ : tcp_negotiator_;
        }
        setup.handshake_timeout = opts_.handshake_timeout;
        setup.step_timeout = opts_.step_timeout;
        std::weak_ptr<impl> weak = shared_from_this();
        setup.on_end = [weak](detail::session_impl& s) {
            if (auto self = weak.lock()) self->session_ended(s);
        };
        session_options so = opts_.session;
        so.limits = opts_.limits;
        auto s = detail::make_received(ex_, std::move(so), std::move(setup));
        {
            std::lock_guard lk(mutex_);
            pending_.emplace(s.get(), s);
            pending_count_.fetch_add(1);
        }
        // The socket moves to the session's strand: its I/O and timers must
        // not run on the server's.
        tcp::socket own(detail::executor_of(*s));
        boost::system::error_code ec;
        const auto proto = sock.local_endpoint(ec).protocol();
        if (!ec) own.assign(proto, sock.release(ec), ec);
        if (ec) { // the peer is already gone
            std::lock_guard lk(mutex_);
            if (pending_.erase(s.get())) pending_count_.fetch_sub(1);
            return;
        }
        // The handler runs on the session's strand (its fallback executor).
        detail::start_received(s, std::move(own), [weak, s](boost::system::error_code ec) mutable {
            auto self = weak.lock();
            if (self) {
                std::lock_guard lk(self->mutex_);
                if (self->pending_.erase(s.get())) self->pending_count_.fetch_sub(1);
            }
            if (ec || !self || self->stopped_) return; // the session has ended itself
            session_acceptor user;
            {
                std::lock_guard lk(self->listen_mutex_);
                user = self->on_session_;
            }
            auto impl = std::move(s);
            if (user) user(detail::make_session(impl));
            detail::begin_reading(impl);
        });
    }

    void stop() {
        stopped_ = true;
        {
            // The acceptors belong to the strand their loops run on.
            std::lock_guard lk(listen_mutex_);
            for (auto& l : listeners_)
                asio::post(strand_, [a = l.acceptor.get(), self = shared_from_this()] {
                    boost::system::error_code ignored;
                    a->close(ignored);
                });
        }
        std::vector<std::shared_ptr<detail::session_impl>> pending;
        {
            std::lock_guard lk(mutex_);
            for (auto& [k, w] : pending_)
                if (auto p = w.lock()) pending.push_back(std::move(p));
        }
        for (auto& p : pending) detail::kick(p, stream_errc::system_shutdown, "the server is stopping");
    }
};

server::server(asio::any_io_executor ex, server_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {
    if (impl_->opts_.domain.empty()) throw std::invalid_argument("xmpp::server needs a domain");
    if (impl_->opts_.tls && !impl_->opts_.tls->is_server())
        throw std::invalid_argument("xmpp::server needs a server TLS context (tls::context::make_server)");
}

server::~server() { impl_->stop(); }

void server::listen(const asio::ip::tcp::endpoint& ep, listener_kind kind) {
    if ((kind == listener_kind::direct_tls || kind == listener_kind::wss) && !impl_->opts_.tls)
        throw std::invalid_argument("a TLS listener needs server_options::tls");
    auto acc = std::make_unique<tcp::acceptor>(impl_->strand_);
    acc->open(ep.protocol());
    acc->set_option(tcp::acceptor::reuse_address(true));
    acc->bind(ep);
    acc->listen(asio::socket_base::max_listen_connections);
    std::lock_guard lk(impl_->listen_mutex_);
    impl_->listeners_.push_back({std::move(acc), kind});
    impl_->start_listener(impl_->listeners_.back());
}

std::uint16_t server::port(std::size_t i) const {
    std::lock_guard lk(impl_->listen_mutex_);
    if (i >= impl_->listeners_.size()) return 0;
    boost::system::error_code ec;
    // local_endpoint() only reads the socket's address: safe beside the accept loop.
    return impl_->listeners_[i].acceptor->local_endpoint(ec).port();
}

void server::start(session_acceptor on_session) {
    std::lock_guard lk(impl_->listen_mutex_);
    if (impl_->started_) return;
    impl_->on_session_ = std::move(on_session);
    impl_->build_negotiators();
    impl_->started_ = true;
    for (auto& l : impl_->listeners_) impl_->start_listener(l);
}

void server::stop() { impl_->stop(); }

std::size_t server::pending() const noexcept { return impl_->pending_count_.load(); }
std::size_t server::bound() const noexcept { return impl_->bound_count_.load(); }

} // namespace xmpp
