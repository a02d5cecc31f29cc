// c-ares driven by an Asio executor; RFC 6120 3.2 / XEP-0368 targets; dialing.
//
// c-ares owns its sockets: it tells us about them through the socket state
// callback (ARES_OPT_SOCK_STATE_CB) and we wait on them with a
// posix::stream_descriptor that never closes the fd (release() when c-ares
// reports (0, 0), right before it closes it). Readiness calls
// ares_process_fd(); a steady_timer set from ares_timeout() drives retries.
// Query callbacks only post completions, so no user code ever runs inside
// c-ares (which may be in ares_process_fd, ares_cancel or ares_destroy).
#include <xmpp/net/resolver.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <arpa/nameser.h>
#include <ares.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace xmpp::net {

namespace {

using srv_list = std::vector<srv_record>;
using addr_list = std::vector<asio::ip::address>;

class dns_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps categories equal across shared objects.
    constexpr dns_category_impl() noexcept : error_category(0x3c52e0a4d1b7f968ULL) {}

    const char* name() const noexcept override { return "xmpp.dns"; }

    std::string message(int ev) const override {
        switch (ev) {
        case 0: return "no error";
        case static_cast<int>(dns_errc::service_unavailable):
            return "the service is decidedly not available at this domain (SRV target \".\")";
        case static_cast<int>(dns_errc::no_targets): return "no connection targets to try";
        default: break;
        }
        if (ev > 0 && ev <= ARES_ESERVICE) return ares_strerror(ev);
        return "unknown DNS error " + std::to_string(ev);
    }

    boost::system::error_condition default_error_condition(int ev) const noexcept override {
        namespace errc = boost::system::errc;
        switch (static_cast<dns_errc>(ev)) {
        case dns_errc::timeout: return errc::make_error_condition(errc::timed_out);
        case dns_errc::connection_refused: return errc::make_error_condition(errc::connection_refused);
        case dns_errc::no_memory: return errc::make_error_condition(errc::not_enough_memory);
        default: return {ev, *this};
        }
    }
};

[[noreturn]] void throw_error(error_code ec, const char* what) {
    throw boost::system::system_error(ec, what);
}

error_code from_ares(int status) {
    if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) return asio::error::operation_aborted;
    return make_error_code(static_cast<dns_errc>(status));
}

void init_library() {
    // Once per process; never cleaned up (other users may share c-ares).
    static const int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) throw_error(from_ares(rc), "ares_library_init");
}

// "[::1]" -> "::1" (JID IP literals and URLs bracket IPv6).
std::string_view unbracket(std::string_view h) {
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') return h.substr(1, h.size() - 2);
    return h;
}

// Plain DNS names only: no NUL (c-ares takes a C string), no non-ASCII
// (IDNs must arrive as A-labels, RFC 5891).
bool plausible_name(std::string_view n) {
    if (n.empty()) return false;
    return std::none_of(n.begin(), n.end(),
                        [](char c) { return c == '\0' || static_cast<unsigned char>(c) >= 0x80; });
}

std::mt19937& thread_rng() {
    thread_local std::mt19937 g{std::random_device{}()};
    return g;
}

// One lookup in flight. c-ares's callback argument; the reference in `self`
// is c-ares's and is dropped in its callback, which c-ares calls exactly
// once (answer, failure, ares_cancel or ares_destroy).
template <class T>
struct pending {
    using handler_type = asio::any_completion_handler<void(error_code, T)>;
    // Constructed, never assigned: Boost 1.81's any_completion_handler
    // move-assignment wraps the handler in itself and recurses forever.
    pending(handler_type h, asio::any_io_executor ex) : handler(std::move(h)), fallback_ex(std::move(ex)) {}

    handler_type handler;             // empty once completed
    asio::any_io_executor fallback_ex; // for handlers without one
    std::shared_ptr<pending> self;

    // Posts the completion, never runs it inline; later calls do nothing
    // (Asio cancellation completes early and c-ares reports later).
    void complete(error_code ec, T value) {
        if (!handler) return;
        auto h = std::move(handler);
        // Through our I/O executor (blocking.never), then to the handler's.
        auto hex = asio::get_associated_executor(h, fallback_ex);
        asio::post(fallback_ex, asio::bind_executor(hex, [h = std::move(h), ec, v = std::move(value)]() mutable {
            // Outside the cancellation handler, so clearing it is allowed.
            auto slot = asio::get_associated_cancellation_slot(h);
            if (slot.is_connected()) slot.clear();
            std::move(h)(ec, std::move(v));
        }));
    }
};

// A c-ares socket watched by Asio. The descriptor never closes the fd.
struct watcher {
    watcher(const asio::any_io_executor& ex, ares_socket_t s) : d(ex), fd(s) {}
    ~watcher() {
        if (d.is_open()) d.release();
    }
    asio::posix::stream_descriptor d;
    ares_socket_t fd;
    bool want_read = false, want_write = false;
    bool reading = false, writing = false; // an async_wait is outstanding
    bool closed = false;                   // c-ares closed (or will close) the fd
};

} // namespace

const boost::system::error_category& dns_category() noexcept {
    static constexpr dns_category_impl cat;
    return cat;
}

struct resolver::impl : std::enable_shared_from_this<resolver::impl> {
    asio::any_io_executor ex;
    asio::steady_timer timer;
    ares_channel channel = nullptr;
    std::unordered_map<ares_socket_t, std::shared_ptr<watcher>> watchers;
    // dial()'s sockets with a TCP connect in flight: cancel() and shutdown()
    // close them, so that the connect ends at once, not at its timeout.
    std::vector<asio::ip::tcp::socket*> connecting;
    // Bumped by cancel() and shutdown(): a dial() or resolve_xmpp() begun
    // before stops at its next step (a completion may already be queued).
    std::uint64_t generation = 0;

    impl(asio::any_io_executor e, const resolver_options& o) : ex(std::move(e)), timer(ex) {
        init_library();
        ares_options opts{};
        opts.sock_state_cb = &impl::on_sock_state;
        opts.sock_state_cb_data = this;
        opts.timeout = static_cast<int>(std::clamp<long long>(o.timeout.count(), 1, INT_MAX));
        opts.tries = std::max(1, o.tries);
        // No search list: ares_getaddrinfo would otherwise try SRV targets
        // and the fallback domain with resolv.conf's (or $LOCALDOMAIN's)
        // search domains, so "example.com" could become
        // "example.com.corp.lan" (or be tried as that first, with ndots).
        // XMPP names are absolute (RFC 6120 3.2.1).  Not a trailing dot:
        // c-ares 1.18 would then miss /etc/hosts ("localhost." is not
        // "localhost").  NOALIASES: $HOSTALIASES would rename dotless names.
        opts.ndomains = 0;
        opts.domains = nullptr;
        opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
        const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS | ARES_OPT_FLAGS;
        if (int rc = ares_init_options(&channel, &opts, mask); rc != ARES_SUCCESS) {
            channel = nullptr;
            throw_error(from_ares(rc), "ares_init_options");
        }
        if (!o.servers.empty()) {
            int rc = o.servers.find('\0') == std::string::npos
                         ? ares_set_servers_ports_csv(channel, o.servers.c_str())
                         : ARES_EBADSTR;
            if (rc != ARES_SUCCESS) {
                ares_destroy(channel);
                channel = nullptr;
                throw_error(from_ares(rc), "resolver_options::servers");
            }
        }
    }

    ~impl() { shutdown(); }

    // Ends every TCP connect of dial() (operation_aborted) and marks the
    // dial()s and resolve_xmpp()s in progress as cancelled.
    void abort_dials() noexcept {
        ++generation;
        for (auto* s : connecting) {
            boost::system::error_code ignored;
            s->close(ignored);
        }
    }

    void shutdown() noexcept {
        abort_dials();
        if (!channel) return;
        // Query callbacks run with ARES_EDESTRUCTION (posted aborts); the
        // socket callback reports (fd, 0, 0) for each socket before close.
        ares_destroy(channel);
        channel = nullptr;
        for (auto& [fd, w] : watchers) {
            w->closed = true;
            boost::system::error_code ignored;
            w->d.cancel(ignored);
            w->d.release();
        }
        watchers.clear();
        timer.cancel();
    }

    static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
        static_cast<impl*>(data)->sock_state(fd, readable != 0, writable != 0);
    }

    void sock_state(ares_socket_t fd, bool r, bool w) {
        auto it = watchers.find(fd);
        if (!r && !w) {
            // c-ares closes fd right after this: stop watching it first.
            if (it != watchers.end()) {
                it->second->closed = true;
                it->second->d.release();
                watchers.erase(it);
            }
            return;
        }
        if (!channel) return; // inside ares_init_options / ares_destroy
        if (it == watchers.end()) {
            auto nw = std::make_shared<watcher>(ex, fd);
            boost::system::error_code ec;
            nw->d.assign(fd, ec);
            // Unwatchable: c-ares still times the query out via the timer.
            if (ec) return;
            it = watchers.emplace(fd, std::move(nw)).first;
        }
        it->second->want_read = r;
        it->second->want_write = w;
        watch(it->second);
    }

    void watch(const std::shared_ptr<watcher>& w) {
        if (w->closed) return;
        if (w->want_read && !w->reading) {
            w->reading = true;
            wait(w, asio::posix::stream_descriptor::wait_read);
        }
        if (w->want_write && !w->writing) {
            w->writing = true;
            wait(w, asio::posix::stream_descriptor::wait_write);
        }
    }

    void wait(std::shared_ptr<watcher> w, asio::posix::stream_descriptor::wait_type type) {
        auto& d = w->d;
        d.async_wait(type, [self = weak_from_this(), w = std::move(w), type](const error_code& ec) {
            const bool read = type == asio::posix::stream_descriptor::wait_read;
            (read ? w->reading : w->writing) = false;
            auto s = self.lock();
            // `closed` first: a completion queued before release() still
            // carries success, and its fd may already be someone else's.
            if (!s || !s->channel || w->closed || ec == asio::error::operation_aborted) return;
            ares_process_fd(s->channel, read ? w->fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : w->fd);
            s->watch(w);
            s->arm_timer();
        });
    }

    // Re-arms the retry timer from ares_timeout(); cancels it when idle.
    void arm_timer() {
        if (!channel) return;
        timeval tv{};
        if (!ares_timeout(channel, nullptr, &tv)) {
            timer.cancel();
            return;
        }
        // ares_timeout() truncates to milliseconds: a floor of 1 ms avoids
        // spinning on a 0 that is not due yet.
        auto d = std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
        timer.expires_after(std::max<std::chrono::steady_clock::duration>(d, std::chrono::milliseconds(1)));
        timer.async_wait([self = weak_from_this()](const error_code& ec) {
            if (ec == asio::error::operation_aborted) return; // re-armed or shut down
            auto s = self.lock();
            if (!s || !s->channel) return;
            ares_process_fd(s->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); // timeouts only
            s->arm_timer();
        });
    }
};

namespace {

void on_srv_reply(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    auto p = std::move(static_cast<pending<srv_list>*>(arg)->self);
    if (!p->handler) return; // abandoned by Asio cancellation
    srv_list out;
    error_code ec;
    if (status == ARES_SUCCESS) {
        ares_srv_reply* reply = nullptr;
        int rc = ares_parse_srv_reply(abuf, alen, &reply);
        if (rc == ARES_SUCCESS) {
            for (auto* r = reply; r; r = r->next) {
                std::string target = r->host ? r->host : "";
                // c-ares expands the root name to "" (RFC 2782 writes ".").
                if (target.empty()) target = ".";
                out.push_back({std::move(target), r->port, r->priority, r->weight});
            }
            ares_free_data(reply);
        } else if (rc != ARES_ENODATA) { // an answer with no SRV record is "no data"
            ec = from_ares(rc);
        }
    } else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
        ec = from_ares(status);
    }
    p->complete(ec, std::move(out));
}

void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
    std::unique_ptr<ares_addrinfo, void (*)(ares_addrinfo*)> guard(res, &ares_freeaddrinfo);
    auto p = std::move(static_cast<pending<addr_list>*>(arg)->self);
    if (!p->handler) return;
    if (status != ARES_SUCCESS) {
        p->complete(from_ares(status), {});
        return;
    }
    addr_list out;
    for (auto* n = res ? res->nodes : nullptr; n; n = n->ai_next) {
        asio::ip::address a;
        if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(sockaddr_in)) {
            sockaddr_in sin;
            std::memcpy(&sin, n->ai_addr, sizeof sin);
            asio::ip::address_v4::bytes_type b;
            std::memcpy(b.data(), &sin.sin_addr, b.size());
            a = asio::ip::address_v4(b);
        } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(sockaddr_in6)) {
            sockaddr_in6 sin6;
            std::memcpy(&sin6, n->ai_addr, sizeof sin6);
            asio::ip::address_v6::bytes_type b;
            std::memcpy(b.data(), &sin6.sin6_addr, b.size());
            a = asio::ip::address_v6(b, sin6.sin6_scope_id);
        } else {
            continue;
        }
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    }
    error_code ec;
    if (out.empty()) ec = make_error_code(dns_errc::no_data);
    p->complete(ec, std::move(out));
}

// Starts one c-ares lookup as an Asio operation completing with
// (error_code, T). `start(arg)` issues the c-ares call with `arg` as the
// callback argument; it runs after the cancellation handler is in place.
template <class T, class Start, class Token>
auto async_ares(resolver::impl& im, Start start, Token&& token) {
    return asio::async_initiate<Token, void(error_code, T)>(
        [&im](auto handler, Start start) {
            auto p = std::make_shared<pending<T>>(std::move(handler), im.ex);
            // The wrapper's own slot: it has installed a forwarder in the
            // handler's slot, which assigning there would destroy.
            auto slot = p->handler.get_cancellation_slot();
            if (!im.channel) {
                p->complete(asio::error::operation_aborted, {});
                return;
            }
            // c-ares 1.18 cannot cancel one query: abandon it instead (its
            // callback later finds no handler). Abandoning has no side
            // effect, so every cancellation type is honoured.
            if (slot.is_connected()) {
                slot.assign([w = std::weak_ptr<pending<T>>(p)](asio::cancellation_type) {
                    if (auto q = w.lock()) q->complete(asio::error::operation_aborted, {});
                });
            }
            p->self = p;
            start(p.get(), p); // may call back synchronously
            im.arm_timer();
        },
        token, std::move(start));
}

template <class Token>
auto async_srv(resolver::impl& im, std::string name, Token&& token) {
    return async_ares<srv_list>(
        im,
        [&im, name = std::move(name)](void* arg, const std::shared_ptr<pending<srv_list>>& p) {
            if (!plausible_name(name)) {
                p->self.reset();
                p->complete(make_error_code(dns_errc::bad_name), {});
                return;
            }
            // ares_query, not ares_search: the name is absolute (RFC 6120 3.2.1).
            ares_query(im.channel, name.c_str(), ns_c_in, ns_t_srv, &on_srv_reply, arg);
        },
        std::forward<Token>(token));
}

template <class Token>
auto async_host(resolver::impl& im, std::string host, Token&& token) {
    return async_ares<addr_list>(
        im,
        [&im, host = std::move(host)](void* arg, const std::shared_ptr<pending<addr_list>>& p) {
            const auto h = unbracket(host);
            error_code lit_ec;
            auto literal = asio::ip::make_address(h, lit_ec);
            if (!lit_ec) { // an IP literal: no query
                p->self.reset();
                p->complete({}, addr_list{literal});
                return;
            }
            if (!plausible_name(host)) {
                p->self.reset();
                p->complete(make_error_code(dns_errc::bad_name), {});
                return;
            }
            ares_addrinfo_hints hints{};
            hints.ai_family = AF_UNSPEC; // A and AAAA
            hints.ai_socktype = SOCK_STREAM;
            ares_getaddrinfo(im.channel, host.c_str(), nullptr, &hints, &on_addrinfo, arg);
        },
        std::forward<Token>(token));
}

} // namespace

resolver::resolver(asio::any_io_executor ex, resolver_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), opts)) {}

resolver::~resolver() {
    impl_->shutdown();
}

asio::any_io_executor resolver::get_executor() const noexcept {
    return impl_->ex;
}

asio::awaitable<std::vector<srv_record>> resolver::lookup_srv(std::string name) {
    co_return co_await async_srv(*impl_, std::move(name), asio::use_awaitable);
}

asio::awaitable<std::vector<asio::ip::address>> resolver::lookup_host(std::string host) {
    co_return co_await async_host(*impl_, std::move(host), asio::use_awaitable);
}

void resolver::cancel() {
    impl_->abort_dials();
    if (!impl_->channel) return;
    ares_cancel(impl_->channel); // callbacks run with ARES_ECANCELLED
    impl_->arm_timer();
}

std::vector<srv_record> order_srv(std::vector<srv_record> records) {
    return order_srv(std::move(records), thread_rng());
}

asio::awaitable<std::vector<connect_target>> resolve_xmpp(resolver& r, std::string domain) {
    if (!plausible_name(domain)) throw_error(make_error_code(dns_errc::bad_name), "resolve_xmpp");
    {
        // An IP address as domainpart: nothing to look up.
        error_code ec;
        asio::ip::make_address(unbracket(domain), ec);
        if (!ec) co_return std::vector<connect_target>{{domain, 5222, false}};
    }
    std::string tls_name = "_xmpps-client._tcp." + domain; // XEP-0368
    std::string tcp_name = "_xmpp-client._tcp." + domain;  // RFC 6120 3.2.1
    // Our own reference: `r` may be destroyed while we wait.
    const std::shared_ptr<resolver::impl> keep = r.impl_;
    auto& im = *keep;
    const auto generation = im.generation;
    auto [order, tls_ec, tls, tcp_ec, tcp] =
        co_await asio::experimental::make_parallel_group(async_srv(im, std::move(tls_name), asio::deferred),
                                                         async_srv(im, std::move(tcp_name), asio::deferred))
            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    (void)order;
    if (tls_ec == asio::error::operation_aborted || tcp_ec == asio::error::operation_aborted ||
        im.generation != generation)
        throw_error(asio::error::operation_aborted, "resolve_xmpp");

    struct tagged {
        srv_record rec;
        bool direct_tls;
    };
    std::vector<tagged> all;
    bool said_unavailable = false;
    // A failed lookup (tls_ec / tcp_ec) left its list empty: "no answer".
    auto take = [&](srv_list& set, bool direct_tls) {
        bool any = false;
        for (auto& rec : set) {
            if (rec.target == ".") continue; // RFC 2782: decidedly not available
            any = true;
            all.push_back({std::move(rec), direct_tls});
        }
        if (!set.empty() && !any) said_unavailable = true;
    };
    take(tls, true);
    take(tcp, false);

    if (all.empty()) {
        // RFC 6120 3.2.1 / XEP-0368 5: an SRV answer of "." forbids the
        // A/AAAA fallback. Otherwise no answer: RFC 6120 3.2.2 fallback.
        if (said_unavailable) throw_error(make_error_code(dns_errc::service_unavailable), "resolve_xmpp");
        co_return std::vector<connect_target>{{domain, 5222, false}};
    }
    // XEP-0368 4 rule 1: one RFC 2782 set, priorities and weights mixed.
    auto ordered = detail::order_srv_by(
        std::move(all), [](const tagged& t) -> const srv_record& { return t.rec; }, thread_rng());
    std::vector<connect_target> out;
    out.reserve(ordered.size());
    for (auto& t : ordered) out.push_back({std::move(t.rec.target), t.rec.port, t.direct_tls});
    co_return out;
}

namespace {

// Lists a socket in impl::connecting for the time of one connect.
class connecting_entry {
public:
    connecting_entry(resolver::impl& im, asio::ip::tcp::socket& s) : im_(im), s_(&s) { im_.connecting.push_back(s_); }
    connecting_entry(const connecting_entry&) = delete;
    connecting_entry& operator=(const connecting_entry&) = delete;
    ~connecting_entry() { std::erase(im_.connecting, s_); }

private:
    resolver::impl& im_;
    asio::ip::tcp::socket* s_;
};

} // namespace

asio::awaitable<std::pair<asio::ip::tcp::socket, connect_target>>
dial(resolver& r, std::vector<connect_target> targets, std::chrono::milliseconds per_attempt) {
    auto ex = co_await asio::this_coro::executor;
    // Our own reference: `r` may be destroyed while we wait (its destructor
    // aborts us, and we must not touch it afterwards).
    const std::shared_ptr<resolver::impl> im = r.impl_;
    const auto generation = im->generation;
    auto check_cancelled = [&] {
        if (im->generation != generation) throw_error(asio::error::operation_aborted, "dial");
    };
    error_code last = make_error_code(dns_errc::no_targets);
    for (auto& t : targets) {
        // RFC 6120 3.2.1 steps 3-6: every address of a target, then the next target.
        auto [lookup_ec, addrs] = co_await async_host(*im, t.host, asio::as_tuple(asio::use_awaitable));
        if (lookup_ec == asio::error::operation_aborted) throw_error(lookup_ec, "dial");
        check_cancelled();
        if (lookup_ec) {
            last = lookup_ec;
            continue;
        }
        for (const auto& a : addrs) {
            asio::ip::tcp::socket s(ex);
            asio::steady_timer timer(ex);
            // Per address: one that drops SYNs costs `per_attempt`, then the
            // next address (or target) gets its own.
            timer.expires_after(per_attempt);
            const asio::ip::tcp::endpoint ep(a, t.port);
            connecting_entry entry(*im, s);
            auto [order, connect_ec, timer_ec] =
                co_await asio::experimental::make_parallel_group(s.async_connect(ep, asio::deferred),
                                                                 timer.async_wait(asio::deferred))
                    .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
            check_cancelled(); // also a connect that completed just before cancel() closed it
            if (order[0] == 0) {
                if (!connect_ec) {
                    // Registered afresh: the connect left EPOLLOUT in the
                    // socket's epoll registration for good, and each later
                    // read wait (EPOLL_CTL_MOD) would then report the idle
                    // socket writable, one wasted wakeup per stanza received.
                    error_code rec;
                    const auto fd = s.release(rec);
                    asio::ip::tcp::socket fresh(ex);
                    if (!rec) fresh.assign(ep.protocol(), fd, rec);
                    if (rec) throw_error(rec, "dial");
                    co_return std::make_pair(std::move(fresh), t);
                }
                // Not our timer (it had not fired): the caller cancelled.
                if (connect_ec == asio::error::operation_aborted) throw_error(connect_ec, "dial");
                last = connect_ec;
            } else {
                if (timer_ec) throw_error(asio::error::operation_aborted, "dial"); // caller cancelled
                last = asio::error::timed_out;
            }
        }
    }
    throw_error(last, "dial");
}

} // namespace xmpp::net
