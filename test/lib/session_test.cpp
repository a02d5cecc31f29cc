// xmpp::session against a scripted server on loopback (real TCP, real TLS
// through STARTTLS): the whole client negotiation with a failure injected at
// every server step, then IQ matching, forged replies, cancellation,
// timeouts and the stream's end.
#include "test_catch.hpp"

#include "testbed/pki.hpp"

#include <xmpp/session.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <functional>
#include <utility>

using namespace xmpp;
using asio::ip::tcp;
using asio::use_awaitable;

namespace {

const std::string header =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " from='localhost' id='s1' version='1.0'>";
const std::string tls_ns = "urn:ietf:params:xml:ns:xmpp-tls";

enum class injection { none, garbage, stream_error, close, silence, truncated, wrong_element };

// The server side of one connection, written plainly: read what the client
// sends, answer from the script. At step `inject_at` the answer is replaced
// by `what`.
struct scripted_server {
    tcp::acceptor acceptor;
    tls::context ctx;
    int inject_at = -1;
    injection what = injection::none;
    int steps_done = 0;
    // Ready phase: called for each element the client sends after binding.
    std::function<asio::awaitable<void>(scripted_server&, xml::node)> on_stanza;
    std::unique_ptr<transport> t;
    xml::reader r;
    bool plain_auth_seen = false;

    scripted_server(asio::io_context& io, tls::context c)
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), ctx(std::move(c)) {}

    unsigned short port() const { return acceptor.local_endpoint().port(); }

    asio::awaitable<xml::frame_event> next_event() {
        for (;;) {
            boost::system::error_code ec;
            auto ev = r.next(ec);
            if (ec) throw boost::system::system_error(ec);
            if (ev != xml::frame_event::need_more) co_return ev;
            auto buf = r.prepare(4096);
            auto n = t->read_some(asio::buffer(buf.data(), buf.size()), ec);
            if (ec == asio::error::would_block) {
                r.commit(0);
                co_await t->wait_read();
                continue;
            }
            if (ec) throw boost::system::system_error(ec);
            r.commit(n);
        }
    }

    asio::awaitable<xml::element> next_element() {
        auto ev = co_await next_event();
        if (ev != xml::frame_event::element) throw std::runtime_error("server: expected an element");
        co_return xml::element::copy_of(r.element());
    }

    // Sends `normal`, or the injection when this is the step; false = stop.
    // Where `normal` opens a stream, the header still goes out first, so the
    // injection lands where the features are due.
    asio::awaitable<bool> act(const std::string& normal) {
        if (steps_done++ != inject_at) {
            co_await t->write(normal);
            co_return true;
        }
        if (normal.starts_with(header) && what != injection::truncated) co_await t->write(header);
        switch (what) {
        case injection::none: co_await t->write(normal); co_return true;
        case injection::garbage: co_await t->write("<<garbage>>"); break;
        case injection::stream_error:
            co_await t->write("<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                              "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>going down</text></stream:error>"
                              "</stream:stream>");
            break;
        case injection::close: break;
        case injection::silence:
            // Say nothing until the client gives up and goes away.
            try {
                for (;;) {
                    co_await t->wait_read();
                    char b[256];
                    boost::system::error_code ec;
                    t->read_some(asio::buffer(b), ec);
                    if (ec && ec != asio::error::would_block) break;
                }
            } catch (const std::exception&) {
            }
            break;
        case injection::truncated: co_await t->write(normal.substr(0, normal.size() / 2)); break;
        case injection::wrong_element: co_await t->write("<message xmlns='jabber:client' id='zz'/>"); break;
        }
        t->close();
        co_return false;
    }

    bool finished = false; // serve() has returned

    asio::awaitable<void> serve() {
        struct on_exit {
            bool& f;
            ~on_exit() { f = true; }
        } exit_flag{finished};
        try {
            auto sock = co_await acceptor.async_accept(use_awaitable);
            t = tls::make_tcp_transport(std::move(sock));
            // Stream 1: STARTTLS.
            if (co_await next_event() != xml::frame_event::stream_open) co_return;
            if (!co_await act(header + "<stream:features><starttls xmlns='" + tls_ns + "'><required/></starttls></stream:features>")) co_return;
            auto st = co_await next_element();
            if (st.root().name() != "starttls") co_return;
            if (!co_await act("<proceed xmlns='" + tls_ns + "'/>")) co_return;
            r.clear();
            t = co_await tls::accept(std::move(t), ctx);
            // Stream 2: SASL PLAIN over TLS.
            if (co_await next_event() != xml::frame_event::stream_open) co_return;
            if (!co_await act(header + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                                       "<mechanism>PLAIN</mechanism></mechanisms></stream:features>")) co_return;
            auto auth = co_await next_element();
            // "\0alice\0secret" in base64.
            plain_auth_seen = auth.root().attr("mechanism") == "PLAIN" && auth.root().text() == "AGFsaWNlAHNlY3JldA==";
            if (!plain_auth_seen) {
                co_await t->write("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>bad password</text></failure>");
                co_return;
            }
            if (!co_await act("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")) co_return;
            r.reset();
            // Stream 3: bind.
            if (co_await next_event() != xml::frame_event::stream_open) co_return;
            if (!co_await act(header + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")) co_return;
            auto bind = co_await next_element();
            std::string id(bind.root().attr("id"));
            if (!co_await act("<iq type='result' id='" + id + "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                              "<jid>alice@localhost/r1</jid></bind></iq>")) co_return;
            // Ready.
            for (;;) {
                auto ev = co_await next_event();
                if (ev == xml::frame_event::stream_close) {
                    co_await t->write("</stream:stream>");
                    co_await t->shutdown();
                    co_return;
                }
                auto e = xml::element::copy_of(r.element());
                if (on_stanza) co_await on_stanza(*this, e.root());
            }
        } catch (const std::exception&) {
        }
    }
};

struct fixture {
    testbed::temp_dir dir;
    testbed::pki pki{dir.path()};
    testbed::pki::leaf leaf = pki.issue("localhost");
    asio::io_context io;

    tls::context server_ctx() {
        tls::server_options o;
        o.cert_file = leaf.cert.string();
        o.key_file = leaf.key.string();
        return tls::context::make_server(o);
    }

    session_options options(unsigned short port) {
        session_options o;
        o.address = jid::parse("alice@localhost");
        o.password = "secret";
        o.host = "127.0.0.1";
        o.port = port;
        o.tls.ca_file = pki.ca_cert().string();
        o.tls.use_system_store = false;
        o.step_timeout = std::chrono::milliseconds(400);
        o.connect_timeout = std::chrono::seconds(10);
        o.close_timeout = std::chrono::milliseconds(500);
        return o;
    }

    // Runs `f` to completion with a hard deadline: nothing may hang.
    void run(std::function<asio::awaitable<void>()> f) {
        bool done = false;
        std::exception_ptr error;
        asio::co_spawn(io, f(), [&](std::exception_ptr e) {
            done = true;
            error = e;
        });
        // Until done, not until the io_context runs out of work: a server
        // coroutine may still be waiting.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!done && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(10));
        REQUIRE(done);
        if (error) std::rethrow_exception(error);
    }
};

} // namespace

TEST_CASE("session: negotiation with a failure injected at every server step") {
    fixture fx;
    // Steps: 0 features, 1 proceed, 2 features, 3 success, 4 features, 5 bind result.
    const int steps = 6;
    for (int at = 0; at < steps; ++at) {
        for (auto what : {injection::garbage, injection::stream_error, injection::close, injection::silence,
                          injection::truncated, injection::wrong_element}) {
            CAPTURE(at, static_cast<int>(what));
            asio::io_context& io = fx.io;
            io.restart();
            scripted_server srv(io, fx.server_ctx());
            srv.inject_at = at;
            srv.what = what;
            asio::co_spawn(io, srv.serve(), asio::detached);
            auto opts = fx.options(srv.port());
            session s(io.get_executor(), opts);
            boost::system::error_code result;
            fx.run([&]() -> asio::awaitable<void> {
                auto [ec] = co_await s.async_connect(asio::as_tuple(use_awaitable));
                result = ec;
            });
            REQUIRE(result);
            auto err = s.last_error();
            INFO(err.what());
            CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
            CHECK_FALSE(has_all(s.state(), session_state::ready));
            switch (what) {
            case injection::garbage: CHECK(result == stream_errc::not_well_formed); break;
            case injection::stream_error:
                CHECK(result == stream_errc::system_shutdown);
                CHECK(err.text.find("going down") != std::string::npos);
                break;
            case injection::close:
            case injection::truncated:
                // Before TLS: the end of the TCP stream; after: no close_notify.
                if (at <= 1) CHECK((result == errc::peer_closed));
                else CHECK((result == errc::peer_closed || result == tls::errc::stream_truncated));
                break;
            case injection::silence: CHECK(result == errc::timeout); break;
            case injection::wrong_element:
                // A stanza is out of place where features, <proceed/>,
                // <success/> or the bind result are due.
                CHECK(result == errc::unexpected_element);
                break;
            case injection::none: break;
            }
            // The server coroutine refers to `srv`: let it end first.
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            while (!srv.finished && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(10));
            REQUIRE(srv.finished);
        }
    }
}

TEST_CASE("session: login, IQ matching, forged replies, cancellation, timeouts, stream end") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    std::vector<std::string> held; // ids the server does not answer
    srv.on_stanza = [&](scripted_server& s, xml::node e) -> asio::awaitable<void> {
        std::string id(e.attr("id"));
        auto payload = iq_view(e).payload();
        std::string kind = payload ? std::string(payload.name()) : "";
        if (kind == "ping") {
            co_await s.t->write("<iq type='result' id='" + id + "'/>");
        } else if (kind == "forge") {
            // A third party answers first (wrong sender), then the real peer.
            co_await s.t->write("<iq type='result' id='" + id + "' from='mallory@evil.example/x'><forged/></iq>");
            co_await s.t->write("<iq type='result' id='" + id + "' from='bob@localhost'><forged/></iq>");
            co_await s.t->write("<iq type='result' id='" + id + "' from='bob@localhost/phone'><real/></iq>");
        } else if (kind == "fail") {
            co_await s.t->write("<iq type='error' id='" + id + "'><error type='cancel'><item-not-found "
                                "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
        } else if (kind == "hold") {
            held.push_back(id);
        } else if (kind == "ask") {
            // The server asks the client something nobody handles.
            co_await s.t->write("<iq type='get' id='q1' from='localhost'><query xmlns='urn:unknown'/></iq>");
        } else if (e.name() == "iq" && e.attr("id") == "q1") {
            co_await s.t->write("<message id='answer-seen'><body>" + std::string(e.attr("type")) + "</body></message>");
        }
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    std::vector<std::string> written;
    opts.on_write = [&](std::string_view b) { written.emplace_back(b); };
    std::string read_bytes;
    opts.on_read = [&](std::string_view b) { read_bytes += b; };
    session s(io.get_executor(), opts);
    std::vector<std::string> seen_messages;
    s.set_handler([&](incoming in) -> asio::awaitable<bool> {
        if (in.element().name() == "message") seen_messages.emplace_back(in.element().child("body").text());
        co_return false;
    });

    fx.run([&]() -> asio::awaitable<void> {
        co_await s.async_connect(use_awaitable);
        CHECK(srv.plain_auth_seen);
        CHECK(s.address().str() == "alice@localhost/r1");
        CHECK(s.sasl_mechanism() == "PLAIN");
        CHECK(has_all(s.state(), session_state::secure | session_state::authenticated | session_state::ready));
        // Tee hooks saw the protocol after TLS too.
        CHECK(read_bytes.find("alice@localhost/r1") != std::string::npos);

        // 100 concurrent pings, all matched.
        int ok = 0;
        std::vector<std::string> ids;
        {
            using namespace asio::experimental::awaitable_operators;
            std::vector<asio::awaitable<void>> waits;
            for (int i = 0; i < 100; ++i) {
                auto iq = make_iq(iq_type::get, "", "ping", "urn:xmpp:ping");
                asio::co_spawn(io, [&, iq = std::move(iq)]() mutable -> asio::awaitable<void> {
                    auto [ec, reply] = co_await s.async_send_iq(std::move(iq), asio::as_tuple(use_awaitable));
                    if (!ec && reply.root().attr("type") == "result") ++ok;
                }, asio::detached);
            }
            asio::steady_timer t(io);
            for (int i = 0; i < 200 && ok < 100; ++i) {
                t.expires_after(std::chrono::milliseconds(10));
                co_await t.async_wait(use_awaitable);
            }
        }
        CHECK(ok == 100);

        // Forged replies from other senders do not complete the request.
        auto forge = make_iq(iq_type::get, "bob@localhost/phone", "forge", "urn:test");
        auto reply = co_await s.async_send_iq(std::move(forge), use_awaitable);
        CHECK(reply.root().child("real"));

        // An error reply carries the stanza error as the code.
        auto [ec_err, err_reply] = co_await s.async_send_iq(make_iq(iq_type::get, "", "fail", "urn:test"),
                                                            asio::as_tuple(use_awaitable));
        CHECK(ec_err == stanza_errc::item_not_found);
        CHECK(err_reply.root().attr("type") == "error");

        // Per-call timeout.
        auto t0 = std::chrono::steady_clock::now();
        auto [ec_to, r_to] = co_await s.async_send_iq(make_iq(iq_type::get, "", "hold", "urn:test"),
                                                      std::chrono::milliseconds(200), asio::as_tuple(use_awaitable));
        CHECK(ec_to == errc::timeout);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));

        // Cancellation removes the pending entry.
        asio::cancellation_signal cancel;
        boost::system::error_code ec_cancel;
        bool cancelled_done = false;
        s.async_send_iq(make_iq(iq_type::get, "", "hold", "urn:test"),
                        asio::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code ec, xml::element) {
                            ec_cancel = ec;
                            cancelled_done = true;
                        }));
        asio::steady_timer t(io, std::chrono::milliseconds(50));
        co_await t.async_wait(use_awaitable);
        cancel.emit(asio::cancellation_type::terminal);
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(use_awaitable);
        CHECK(cancelled_done);
        CHECK(ec_cancel == asio::error::operation_aborted);

        // An IQ nobody handles gets service-unavailable.
        co_await s.async_send(make_iq(iq_type::get, "", "ask", "urn:test"), use_awaitable);
        for (int i = 0; i < 100 && seen_messages.empty(); ++i) {
            t.expires_after(std::chrono::milliseconds(10));
            co_await t.async_wait(use_awaitable);
        }
        REQUIRE(seen_messages.size() == 1);
        CHECK(seen_messages[0] == "error");
        bool unavailable = false;
        for (auto& w : written) unavailable = unavailable || w.find("service-unavailable") != std::string::npos;
        CHECK(unavailable);

        // The stream's end fails what is pending.
        boost::system::error_code ec_pending;
        bool pending_done = false;
        s.async_send_iq(make_iq(iq_type::get, "", "hold", "urn:test"), [&](boost::system::error_code ec, xml::element) {
            ec_pending = ec;
            pending_done = true;
        });
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(use_awaitable);
        co_await s.async_close(use_awaitable);
        t.expires_after(std::chrono::milliseconds(20));
        co_await t.async_wait(use_awaitable);
        CHECK(pending_done);
        CHECK(ec_pending == errc::session_closed);
        CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
        // Sending after the end is refused.
        auto [ec_after] = co_await s.async_send(make_message("bob@localhost", "hi"), asio::as_tuple(use_awaitable));
        CHECK(ec_after == errc::not_connected);
    });
}

TEST_CASE("session: wrong password gives not-authorized with the server's text") {
    fixture fx;
    scripted_server srv(fx.io, fx.server_ctx());
    asio::co_spawn(fx.io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    opts.password = "wrong";
    session s(fx.io.get_executor(), opts);
    boost::system::error_code result;
    fx.run([&]() -> asio::awaitable<void> {
        auto [ec] = co_await s.async_connect(asio::as_tuple(use_awaitable));
        result = ec;
    });
    CHECK(result == sasl::errc::not_authorized);
    CHECK(s.last_error().text.find("bad password") != std::string::npos);
}

TEST_CASE("session: a certificate for another name is refused") {
    fixture fx;
    tls::server_options so;
    auto evil = fx.pki.issue("evil.example");
    so.cert_file = evil.cert.string();
    so.key_file = evil.key.string();
    scripted_server srv(fx.io, tls::context::make_server(so));
    asio::co_spawn(fx.io, srv.serve(), asio::detached);
    session s(fx.io.get_executor(), fx.options(srv.port()));
    boost::system::error_code result;
    fx.run([&]() -> asio::awaitable<void> {
        auto [ec] = co_await s.async_connect(asio::as_tuple(use_awaitable));
        result = ec;
    });
    CHECK(result == tls::errc::hostname_mismatch);
    CHECK_FALSE(srv.plain_auth_seen);
}

TEST_CASE("session: a peer that does not read fills the bounded send queue") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    // The server stops reading at the first stanza until told to go on.
    asio::steady_timer resume(io, std::chrono::hours(1));
    srv.on_stanza = [&](scripted_server&, xml::node) -> asio::awaitable<void> {
        if (resume.expiry() == asio::steady_timer::time_point::max()) co_return;
        co_await resume.async_wait(asio::as_tuple(use_awaitable)); // cancelled: go on
        resume.expires_at(asio::steady_timer::time_point::max());
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    opts.max_send_queue = 64 * 1024;
    session s(io.get_executor(), opts);
    fx.run([&]() -> asio::awaitable<void> { co_await s.async_connect(use_awaitable); });

    // Send without waiting for completions, a few at a time, letting the
    // writer run in between, until the queue refuses: the socket buffers
    // fill first (megabytes on loopback), then the queue.
    const std::string body(32 * 1024, 'x');
    int issued = 0, ok = 0, full = 0, other = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (full == 0 && issued < 4000 && std::chrono::steady_clock::now() < until) {
        for (int k = 0; k < 4; ++k, ++issued)
            s.async_send(make_message("bob@localhost", body), [&](boost::system::error_code ec) {
                if (!ec) ++ok;
                else if (ec == errc::send_queue_full) ++full;
                else ++other;
            });
        io.poll();
    }
    io.run_for(std::chrono::milliseconds(100));
    CHECK(full > 0);
    CHECK(ok + full < issued); // accepted ones still wait for the peer
    CHECK(has_all(s.state(), session_state::ready));
    // An IQ is refused the same way while the queue is full.
    boost::system::error_code iq_ec;
    auto big_iq = make_iq(iq_type::set, "localhost", "big", "urn:x:big");
    auto big_payload = iq_view(big_iq.root()).payload();
    REQUIRE(big_payload);
    big_payload.set_text(std::string(64 * 1024, 'y')); // alone over the limit
    bool iq_done = false;
    s.async_send_iq(std::move(big_iq), [&](boost::system::error_code ec, xml::element) {
        iq_ec = ec;
        iq_done = true;
    });
    io.run_for(std::chrono::milliseconds(50));
    io.run_for(std::chrono::milliseconds(50));
    CHECK(iq_ec == errc::send_queue_full);

    // The peer reads again: everything accepted is delivered, nothing lost.
    resume.cancel();
    const auto until2 = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (ok + full + other < issued && std::chrono::steady_clock::now() < until2) io.run_for(std::chrono::milliseconds(10));
    CHECK(ok + full == issued);
    CHECK(other == 0);
    CHECK(has_all(s.state(), session_state::ready));
    fx.run([&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
    const auto until3 = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!srv.finished && std::chrono::steady_clock::now() < until3) io.run_for(std::chrono::milliseconds(10));
    CHECK(srv.finished);
}

TEST_CASE("session: a server that floods requests and does not read the replies is cut off") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    // At the first stanza: 100,000 IQ gets nobody handles (each owes a
    // service-unavailable reply), and no more reading.
    asio::steady_timer forever(io, std::chrono::hours(1));
    bool flooded = false;
    srv.on_stanza = [&](scripted_server& sv, xml::node) -> asio::awaitable<void> {
        if (std::exchange(flooded, true)) co_return;
        std::string flood;
        for (int i = 0; i < 100000; ++i)
            flood += "<iq type='get' id='f" + std::to_string(i) + "' from='localhost'><query xmlns='urn:x:flood'/></iq>";
        try {
            co_await sv.t->write(flood);
        } catch (const std::exception&) {
        }
        co_await forever.async_wait(asio::as_tuple(use_awaitable));
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    opts.max_send_queue = 64 * 1024;
    error_info closed_with;
    opts.on_closed = [&](const error_info& e) { closed_with = e; };
    session s(io.get_executor(), opts);
    fx.run([&]() -> asio::awaitable<void> {
        co_await s.async_connect(use_awaitable);
        co_await s.async_send(make_message("localhost", "go"), use_awaitable);
    });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!closed_with.code && std::chrono::steady_clock::now() < until) io.run_for(std::chrono::milliseconds(10));
    CHECK(closed_with.code == errc::send_queue_full);
    CHECK(s.last_error().code == errc::send_queue_full);
    CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
    // Ends a wait in progress, and one not started yet.
    forever.expires_at(asio::steady_timer::time_point::min());
    const auto until2 = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!srv.finished && std::chrono::steady_clock::now() < until2) io.run_for(std::chrono::milliseconds(10));
    CHECK(srv.finished);
}
