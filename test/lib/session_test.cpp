// xmpp::session against a scripted server on loopback (real TCP, real TLS
// through STARTTLS): the whole client negotiation with a failure injected at
// every server step, then IQ matching, forged replies, cancellation,
// timeouts and the stream's end.
#include "test_catch.hpp"

#include "testbed/pki.hpp"

#include "detail/base64.hpp"

#include <xmpp/session.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <functional>
#include <future>
#include <thread>
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
    // Variations of the script.
    std::string mechanisms = "<mechanism>PLAIN</mechanism>"; // children of <mechanisms/>
    bool starttls_required = true;
    bool mechanisms_first = false;     // stream 1 lists <mechanisms/> before <starttls/>
    bool bytes_after_proceed = false;  // plaintext right behind <proceed/>
    bool answer_close = true;          // answer our closing tag with the server's
    bool starttls_seen = false;
    bool closing_tag_seen = false;

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
            const std::string starttls = "<starttls xmlns='" + tls_ns + "'>" +
                                         std::string(starttls_required ? "<required/>" : "") + "</starttls>";
            const std::string mechs = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + mechanisms + "</mechanisms>";
            // Named, not a ?: temporary inside co_await (GCC 12 miscompile).
            const std::string listed = mechanisms_first ? mechs + starttls : starttls;
            if (!co_await act(header + "<stream:features>" + listed + "</stream:features>")) co_return;
            auto st = co_await next_element();
            if (st.root().name() != "starttls") co_return;
            starttls_seen = true;
            if (!co_await act("<proceed xmlns='" + tls_ns + "'/>" + (bytes_after_proceed ? "<x/>" : ""))) co_return;
            r.clear();
            t = co_await tls::accept(std::move(t), ctx);
            // Stream 2: SASL PLAIN over TLS.
            if (co_await next_event() != xml::frame_event::stream_open) co_return;
            if (!co_await act(header + "<stream:features>" + mechs + "</stream:features>")) co_return;
            auto auth = co_await next_element();
            if (auth.root().attr("mechanism") == "SCRAM-SHA-1") {
                // RFC 5802 5: a well-formed exchange whose server signature
                // is wrong, so the client must not trust the server.
                auto first = detail::base64_decode(auth.root().text()).value_or("");
                auto r_at = first.find(",r=");
                if (r_at == std::string::npos) co_return;
                const std::string nonce = first.substr(r_at + 3);
                co_await t->write("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
                                  detail::base64_encode("r=" + nonce + "srv,s=" + detail::base64_encode("salt") + ",i=4096") +
                                  "</challenge>");
                auto response = co_await next_element();
                if (response.root().name() != "response") co_return;
                co_await t->write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
                                  detail::base64_encode("v=" + detail::base64_encode(std::string(20, 'v'))) + "</success>");
                // The client gives up here; read until it goes away.
                for (;;) co_await next_event();
            }
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
                    closing_tag_seen = true;
                    if (!answer_close) {
                        // Keep the connection and say nothing.
                        for (;;) {
                            co_await t->wait_read();
                            char b[256];
                            boost::system::error_code ec;
                            t->read_some(asio::buffer(b), ec);
                            if (ec && ec != asio::error::would_block) co_return;
                        }
                    }
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
        io.restart(); // an earlier run may have run out of work
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

TEST_CASE("session: replies complete from the reader: handlers that send, throw, or see the stream end") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    std::vector<std::string> order; // what the server read, in order
    srv.on_stanza = [&](scripted_server& s, xml::node e) -> asio::awaitable<void> {
        std::string id(e.attr("id"));
        auto payload = iq_view(e).payload();
        std::string kind = payload ? std::string(payload.name()) : std::string(e.name());
        order.push_back(kind);
        if (kind == "ping" || kind == "second") {
            co_await s.t->write("<iq type='result' id='" + id + "'/>");
        } else if (kind == "pair") {
            // Two replies in one read: both complete, in order.
            co_await s.t->write("<iq type='result' id='" + id + "'><one/></iq><message><body>after</body></message>");
        } else if (kind == "last") {
            // The reply and the stream's end in one read: the reply wins.
            co_await s.t->write("<iq type='result' id='" + id + "'><last/></iq></stream:stream>");
        }
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    session s(io.get_executor(), fx.options(srv.port()));
    std::vector<std::string> handled;
    s.set_handler([&](incoming in) -> asio::awaitable<bool> {
        handled.emplace_back(in.element().child("body").text());
        co_return true;
    });
    fx.run([&]() -> asio::awaitable<void> { co_await s.async_connect(use_awaitable); });

    // A completion that sends the next request from inside the reader's
    // turn: the request goes out, and its own reply completes too.
    bool second_done = false;
    s.async_send_iq(make_iq(iq_type::get, "", "ping", "urn:test"), [&](boost::system::error_code ec, xml::element) {
        CHECK(!ec);
        s.async_send_iq(make_iq(iq_type::get, "", "second", "urn:test"),
                        [&](boost::system::error_code ec2, xml::element r) {
                            CHECK(!ec2);
                            second_done = r.root().attr("type") == "result";
                        });
    });
    for (int i = 0; i < 500 && !second_done; ++i) io.run_for(std::chrono::milliseconds(10));
    CHECK(second_done);

    // An exception from a completion handler leaves through run(), as a
    // posted handler's would, and the session goes on.
    bool threw = false;
    s.async_send_iq(make_iq(iq_type::get, "", "ping", "urn:test"),
                    [](boost::system::error_code, xml::element) { throw std::runtime_error("from a handler"); });
    try {
        for (int i = 0; i < 500; ++i) io.run_for(std::chrono::milliseconds(10));
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "from a handler";
    }
    CHECK(threw);

    fx.run([&]() -> asio::awaitable<void> {
        auto pair = co_await s.async_send_iq(make_iq(iq_type::get, "", "pair", "urn:test"), use_awaitable);
        CHECK(pair.root().child("one"));
        asio::steady_timer t(io);
        for (int i = 0; i < 100 && handled.empty(); ++i) {
            t.expires_after(std::chrono::milliseconds(10));
            co_await t.async_wait(use_awaitable);
        }
        CHECK(handled == std::vector<std::string>{"after"});
        auto [ec, last] = co_await s.async_send_iq(make_iq(iq_type::get, "", "last", "urn:test"),
                                                   asio::as_tuple(use_awaitable));
        CHECK(!ec);
        CHECK(last.root().child("last"));
    });
    CHECK(has_all(s.state(), session_state::input_closed));
    CHECK(order == std::vector<std::string>{"ping", "second", "ping", "pair", "last"});
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

    // Send without waiting for completions, one at a time, letting the
    // writer run in between, until the queue refuses: the socket buffers
    // fill first (megabytes on loopback), then the queue.
    const std::string body(32 * 1024, 'x');
    int issued = 0, ok = 0, full = 0, other = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (full == 0 && issued < 4000 && std::chrono::steady_clock::now() < until) {
        for (int k = 0; k < 1; ++k, ++issued)
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

namespace {

// Connects `s` and returns the error (none on success).
boost::system::error_code connect(fixture& fx, session& s) {
    boost::system::error_code result;
    fx.run([&]() -> asio::awaitable<void> {
        auto [ec] = co_await s.async_connect(asio::as_tuple(use_awaitable));
        result = ec;
    });
    return result;
}

// Lets the server coroutine (which refers to `srv`) end before it goes.
void drain(fixture& fx, scripted_server& srv) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!srv.finished && std::chrono::steady_clock::now() < deadline) fx.io.run_for(std::chrono::milliseconds(10));
    CHECK(srv.finished);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(use_awaitable);
}

} // namespace

TEST_CASE("session: what the server offers decides negotiation failures") {
    fixture fx;
    SECTION("mechanism lists that end the session: each its own code, the session closed") {
        struct row {
            std::string mechanisms;
            boost::system::error_code expected;
        };
        const std::vector<row> rows = {
            {"<mechanism>X-UNKNOWN</mechanism><mechanism>DIGEST-MD5</mechanism>",
             sasl::errc::no_acceptable_mechanism},
            {"", sasl::errc::no_acceptable_mechanism},
            // A well-formed exchange whose server signature is wrong.
            {"<mechanism>SCRAM-SHA-1</mechanism>", sasl::errc::bad_server_signature},
        };
        for (const auto& r : rows) {
            CAPTURE(r.mechanisms);
            scripted_server srv(fx.io, fx.server_ctx());
            srv.mechanisms = r.mechanisms;
            asio::co_spawn(fx.io, srv.serve(), asio::detached);
            session s(fx.io.get_executor(), fx.options(srv.port()));
            auto ec = connect(fx, s);
            INFO(s.last_error().what());
            CHECK(ec == r.expected);
            CHECK_FALSE(has_any(s.state(), session_state::authenticated | session_state::ready));
            CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
            drain(fx, srv);
        }
    }
    SECTION("TLS without verification (insecure_skip_verify): PLAIN is never sent") {
        scripted_server srv(fx.io, fx.server_ctx());
        asio::co_spawn(fx.io, srv.serve(), asio::detached);
        auto o = fx.options(srv.port());
        o.tls.insecure_skip_verify = true;
        o.tls.ca_file.clear();
        session s(fx.io.get_executor(), o);
        auto ec = connect(fx, s);
        INFO(s.last_error().what());
        CHECK(ec == sasl::errc::no_acceptable_mechanism);
        CHECK(has_all(s.state(), session_state::secure)); // TLS itself ran
        CHECK_FALSE(srv.plain_auth_seen);
        drain(fx, srv);
    }
    SECTION("plaintext right behind <proceed/>: tls_injection") {
        scripted_server srv(fx.io, fx.server_ctx());
        srv.bytes_after_proceed = true;
        asio::co_spawn(fx.io, srv.serve(), asio::detached);
        session s(fx.io.get_executor(), fx.options(srv.port()));
        CHECK(connect(fx, s) == errc::tls_injection);
        CHECK_FALSE(has_any(s.state(), session_state::secure));
        drain(fx, srv);
    }
    SECTION("an optional STARTTLS listed after the mechanisms is still taken, also with allow_plaintext") {
        for (bool allow : {false, true}) {
            CAPTURE(allow);
            scripted_server srv(fx.io, fx.server_ctx());
            srv.starttls_required = false;
            srv.mechanisms_first = true;
            asio::co_spawn(fx.io, srv.serve(), asio::detached);
            auto o = fx.options(srv.port());
            o.allow_plaintext = allow;
            session s(fx.io.get_executor(), o);
            auto ec = connect(fx, s);
            INFO(s.last_error().what());
            CHECK_FALSE(ec);
            CHECK(srv.starttls_seen);
            CHECK(srv.plain_auth_seen);
            CHECK(has_all(s.state(), session_state::secure | session_state::ready));
            fx.run([&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
            drain(fx, srv);
        }
    }
}

TEST_CASE("session: connect deadlines and cancellation") {
    fixture fx;
    SECTION("connect_timeout over a silent server") {
        scripted_server srv(fx.io, fx.server_ctx());
        srv.inject_at = 0;
        srv.what = injection::silence;
        asio::co_spawn(fx.io, srv.serve(), asio::detached);
        auto o = fx.options(srv.port());
        o.step_timeout = std::chrono::seconds(10);
        o.connect_timeout = std::chrono::milliseconds(300);
        session s(fx.io.get_executor(), o);
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(connect(fx, s) == errc::timeout);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
        drain(fx, srv);
    }
    SECTION("cancellation of a connect in progress") {
        scripted_server srv(fx.io, fx.server_ctx());
        srv.inject_at = 0;
        srv.what = injection::silence;
        asio::co_spawn(fx.io, srv.serve(), asio::detached);
        auto o = fx.options(srv.port());
        o.step_timeout = std::chrono::seconds(10);
        session s(fx.io.get_executor(), o);
        asio::cancellation_signal cancel;
        boost::system::error_code result;
        bool done = false;
        s.async_connect(asio::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code ec) {
            result = ec;
            done = true;
        }));
        fx.run([&]() -> asio::awaitable<void> {
            co_await sleep_for(std::chrono::milliseconds(100));
            CHECK_FALSE(done);
            cancel.emit(asio::cancellation_type::terminal);
            for (int i = 0; i < 100 && !done; ++i) co_await sleep_for(std::chrono::milliseconds(10));
        });
        CHECK(done);
        CHECK(result == asio::error::operation_aborted);
        CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
        // A second connect on the same object is refused.
        CHECK(connect(fx, s) == errc::already_connected);
        drain(fx, srv);
    }
}

TEST_CASE("session: handlers reply, ask back, and outlive nothing") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    std::vector<std::string> got;
    srv.on_stanza = [&](scripted_server& sv, xml::node e) -> asio::awaitable<void> {
        got.push_back(xml::element::copy_of(e).to_string());
        auto payload = iq_view(e).payload();
        std::string id(e.attr("id"));
        if (e.name() == "message" && e.child("body").text() == "start") {
            // The server asks; the client's handler asks back before it answers.
            co_await sv.t->write("<iq type='get' id='s1' from='localhost'><query xmlns='urn:test:ask'/></iq>");
        } else if (payload && payload.name() == "back") {
            co_await sv.t->write("<iq type='result' id='" + id + "' from='localhost'><back xmlns='urn:test:ask'>42</back></iq>");
        } else if (payload && payload.name() == "self") {
            // Replies to a request to our own account may come from the
            // bare JID, the full JID or the domain (8.1.2.1).
            std::string from(e.child("self", "urn:test").attr("from"));
            const std::string from_attr = from.empty() ? std::string() : " from='" + from + "'";
            co_await sv.t->write("<iq type='result' id='" + id + "'" + from_attr + "/>");
        } else if (payload && payload.name() == "hijack") {
            // A get carrying the id of a pending request is not its answer.
            co_await sv.t->write("<iq type='get' id='" + id + "' from='localhost'><q xmlns='urn:x'/></iq>");
            co_await sv.t->write("<iq type='result' id='" + id + "' from='localhost'><real xmlns='urn:x'/></iq>");
        }
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    int closed_calls = 0;
    error_info closed_with;
    opts.on_closed = [&](const error_info& e) {
        ++closed_calls;
        closed_with = e;
    };
    session s(io.get_executor(), opts);
    std::string asked_back;
    s.set_handler([&](incoming in) -> asio::awaitable<bool> {
        if (in.kind() != stanza_kind::iq || !in.element().child("query", "urn:test:ask")) co_return false;
        // A handler may co_await an IQ of its own without blocking the reader.
        auto r = co_await in.async_send_iq(make_iq(iq_type::get, "localhost", "back", "urn:test:ask"), use_awaitable);
        asked_back = r.root().child("back", "urn:test:ask").text();
        xml::element payload("answer", "urn:test:ask");
        payload.root().set_text(asked_back);
        co_await in.async_reply(std::move(payload), use_awaitable);
        co_return true;
    });
    REQUIRE_FALSE(connect(fx, s));

    fx.run([&]() -> asio::awaitable<void> {
        co_await s.async_send(make_message("localhost", "start"), use_awaitable);
        for (int i = 0; i < 200 && got.size() < 3; ++i) co_await sleep_for(std::chrono::milliseconds(10));
        CHECK(asked_back == "42");
        REQUIRE(got.size() >= 3);
        CHECK(got[2].find("id='s1'") != std::string::npos);
        CHECK(got[2].find("type='result'") != std::string::npos);
        CHECK(got[2].find("<answer xmlns='urn:test:ask'>42</answer>") != std::string::npos);

        for (std::string from : {"", "alice@localhost", "alice@localhost/r1", "localhost"}) {
            CAPTURE(from);
            auto iq = make_iq(iq_type::get, "", "self", "urn:test");
            iq_view(iq.root()).payload().set_attr("from", from);
            auto [ec, r] = co_await s.async_send_iq(std::move(iq), std::chrono::seconds(2), asio::as_tuple(use_awaitable));
            CHECK_FALSE(ec);
        }
        // ... but not from another account.
        {
            auto iq = make_iq(iq_type::get, "", "self", "urn:test");
            iq_view(iq.root()).payload().set_attr("from", "bob@localhost");
            auto [ec, r] = co_await s.async_send_iq(std::move(iq), std::chrono::milliseconds(300), asio::as_tuple(use_awaitable));
            CHECK(ec == errc::timeout);
        }

        // The get that reuses the id does not complete the request; the result does.
        auto [ec_h, r_h] = co_await s.async_send_iq(make_iq(iq_type::get, "localhost", "hijack", "urn:x"),
                                                    std::chrono::seconds(2), asio::as_tuple(use_awaitable));
        CHECK_FALSE(ec_h);
        CHECK(r_h.root().child("real", "urn:x"));

        // A caller's id that is already pending is refused.
        auto held = make_iq(iq_type::get, "localhost", "nothing", "urn:x");
        held.root().set_attr("id", "dup");
        auto again = make_iq(iq_type::get, "localhost", "nothing", "urn:x");
        again.root().set_attr("id", "dup");
        s.async_send_iq(std::move(held), std::chrono::seconds(5), [](boost::system::error_code, xml::element) {});
        auto [ec_dup, r_dup] = co_await s.async_send_iq(std::move(again), asio::as_tuple(use_awaitable));
        CHECK(ec_dup == errc::invalid_argument);

    });
    CHECK(closed_calls == 0);
    fx.run([&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
    CHECK(closed_calls == 1);
    CHECK(closed_with.code == errc::session_closed);
    drain(fx, srv);
}

TEST_CASE("session: a burst's replies go out before its end once 1.5 KB wait") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    int results = 0;
    srv.on_stanza = [&](scripted_server& sv, xml::node e) -> asio::awaitable<void> {
        if (e.name() == "message") {
            // 60 requests in one write: one read on the client's side.
            std::string burst;
            for (int i = 0; i < 60; ++i)
                burst += "<iq type='get' id='b" + std::to_string(i) + "' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>";
            co_await sv.t->write(burst);
        } else if (e.name() == "iq" && e.attr("type") == "result") {
            ++results;
        }
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    opts.read_size = 64 * 1024;
    std::vector<std::size_t> writes;
    bool counting = false;
    opts.on_write = [&](std::string_view b) {
        if (counting) writes.push_back(b.size());
    };
    session s(io.get_executor(), opts);
    s.set_handler([](incoming in) -> asio::awaitable<bool> {
        co_await in.async_reply(asio::deferred);
        co_return true;
    });
    REQUIRE_FALSE(connect(fx, s));
    fx.run([&]() -> asio::awaitable<void> {
        co_await s.async_send(make_message("localhost", "go"), use_awaitable);
        counting = true;
        for (int i = 0; i < 200 && results < 60; ++i) co_await sleep_for(std::chrono::milliseconds(10));
        counting = false;
        co_await s.async_close(use_awaitable);
    });
    CHECK(results == 60);
    // ~2.6 KB of results: several writes, not one at the burst's end.
    std::size_t total = 0;
    for (auto n : writes) total += n;
    CHECK(total > 2000);
    CHECK(writes.size() >= 2);
    REQUIRE_FALSE(writes.empty());
    CHECK(writes.front() < 2048); // the first went out at ~1.5 KB
    drain(fx, srv);
}

TEST_CASE("session: queued stanzas share writes; a destroyed session leaves handlers safe") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    int messages_seen = 0;
    srv.on_stanza = [&](scripted_server& sv, xml::node e) -> asio::awaitable<void> {
        if (e.name() == "message") ++messages_seen;
        if (e.name() == "message" && e.child("body").text() == "poke")
            co_await sv.t->write("<iq type='get' id='p1' from='localhost'><slow xmlns='urn:x'/></iq>");
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto opts = fx.options(srv.port());
    auto writes = std::make_shared<int>(0);
    opts.on_write = [writes](std::string_view) { ++*writes; };
    auto s = std::make_unique<session>(io.get_executor(), opts);
    // The handler's state lives in the handler object: destroying the
    // session while the call is suspended must not free it under the call.
    auto reply_ec = std::make_shared<boost::system::error_code>();
    auto handler_done = std::make_shared<bool>(false);
    std::string marker = "still here";
    s->set_handler([marker, reply_ec, handler_done](incoming in) -> asio::awaitable<bool> {
        co_await sleep_for(std::chrono::milliseconds(200));
        const bool intact = marker == "still here";
        auto [ec] = co_await in.async_reply(asio::as_tuple(use_awaitable));
        *reply_ec = ec;
        *handler_done = intact;
        co_return true;
    });
    REQUIRE_FALSE(connect(fx, *s));

    fx.run([&]() -> asio::awaitable<void> {
        // 50 messages sent without waiting: far fewer writes than messages.
        const int before = *writes;
        int done = 0;
        for (int i = 0; i < 50; ++i)
            s->async_send(make_message("localhost", "m" + std::to_string(i)), [&](boost::system::error_code ec) {
                if (!ec) ++done;
            });
        for (int i = 0; i < 200 && (done < 50 || messages_seen < 50); ++i) co_await sleep_for(std::chrono::milliseconds(10));
        CHECK(done == 50);
        CHECK(messages_seen == 50);
        CHECK(*writes - before < 10);

        co_await s->async_send(make_message("localhost", "poke"), use_awaitable);
        co_await sleep_for(std::chrono::milliseconds(50)); // the handler is now suspended
        s.reset();
        for (int i = 0; i < 100 && !*handler_done; ++i) co_await sleep_for(std::chrono::milliseconds(10));
    });
    CHECK(*handler_done);
    CHECK(*reply_ec == errc::not_connected);
    drain(fx, srv);
}

TEST_CASE("session: close deadline, stream errors after ready, calls from other threads") {
    fixture fx;
    auto& io = fx.io;
    SECTION("a server that never answers our closing tag") {
        scripted_server srv(io, fx.server_ctx());
        srv.answer_close = false;
        asio::co_spawn(io, srv.serve(), asio::detached);
        session s(io.get_executor(), fx.options(srv.port())); // close_timeout 500 ms
        REQUIRE_FALSE(connect(fx, s));
        const auto t0 = std::chrono::steady_clock::now();
        fx.run([&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= std::chrono::milliseconds(400));
        CHECK(took < std::chrono::seconds(3));
        CHECK(srv.closing_tag_seen);
        CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
        drain(fx, srv);
    }
    SECTION("a stream error after ready fails what is pending with its condition") {
        scripted_server srv(io, fx.server_ctx());
        srv.on_stanza = [&](scripted_server& sv, xml::node e) -> asio::awaitable<void> {
            if (iq_view(e).payload().name() == "bye")
                co_await sv.t->write("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                     "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>replaced</text></stream:error>"
                                     "</stream:stream>");
        };
        asio::co_spawn(io, srv.serve(), asio::detached);
        auto o = fx.options(srv.port());
        error_info closed_with;
        o.on_closed = [&](const error_info& e) { closed_with = e; };
        session s(io.get_executor(), o);
        REQUIRE_FALSE(connect(fx, s));
        fx.run([&]() -> asio::awaitable<void> {
            auto [ec, r] = co_await s.async_send_iq(make_iq(iq_type::get, "localhost", "bye", "urn:x"),
                                                    asio::as_tuple(use_awaitable));
            CHECK(ec == stream_errc::conflict);
        });
        CHECK(closed_with.code == stream_errc::conflict);
        CHECK(s.last_error().code == stream_errc::conflict);
        CHECK(s.last_error().text == "stream error from the server: replaced");
        CHECK(has_all(s.state(), session_state::input_closed | session_state::output_closed));
        drain(fx, srv);
    }
    SECTION("operations started from another thread, completing on another io_context") {
        scripted_server srv(io, fx.server_ctx());
        srv.on_stanza = [&](scripted_server& sv, xml::node e) -> asio::awaitable<void> {
            if (e.name() == "iq") {
                co_await sleep_for(std::chrono::milliseconds(100));
                co_await sv.t->write("<iq type='result' id='" + std::string(e.attr("id")) + "' from='localhost'/>");
            }
        };
        asio::co_spawn(io, srv.serve(), asio::detached);
        session s(io.get_executor(), fx.options(srv.port()));
        REQUIRE_FALSE(connect(fx, s));
        auto guard = asio::make_work_guard(io);
        std::thread runner([&] { io.run(); });
        // The handler runs on io2, whose run() returns only when no work
        // is left: the pending IQ must count as work there.
        asio::io_context io2;
        bool answered = false;
        s.async_send_iq(make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"),
                        asio::bind_executor(io2, [&](boost::system::error_code ec, xml::element) { answered = !ec; }));
        io2.run();
        CHECK(answered);
        // And a future from this thread.
        auto f = s.async_send_iq(make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"), asio::use_future);
        CHECK(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        CHECK(f.get().root().attr("type") == "result");
        CHECK(has_all(s.state(), session_state::ready));
        auto c = s.async_close(asio::use_future);
        CHECK(c.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        guard.reset();
        runner.join();
        io.restart();
        drain(fx, srv);
    }
}

TEST_CASE("session: at most max_handlers handler calls run at once; none is lost") {
    fixture fx;
    auto& io = fx.io;
    scripted_server srv(io, fx.server_ctx());
    srv.on_stanza = [&](scripted_server& sv, xml::node e) -> asio::awaitable<void> {
        if (e.name() != "message") co_return;
        std::string flood;
        for (int i = 0; i < 100; ++i) flood += "<message from='bob@localhost/x'><body>" + std::to_string(i) + "</body></message>";
        co_await sv.t->write(flood);
    };
    asio::co_spawn(io, srv.serve(), asio::detached);
    auto o = fx.options(srv.port());
    o.max_handlers = 4;
    session s(io.get_executor(), o);
    int running = 0, most = 0, handled = 0;
    s.set_handler([&](incoming) -> asio::awaitable<bool> {
        most = std::max(most, ++running);
        co_await sleep_for(std::chrono::milliseconds(2));
        --running;
        ++handled;
        co_return true;
    });
    REQUIRE_FALSE(connect(fx, s));
    fx.run([&]() -> asio::awaitable<void> {
        co_await s.async_send(make_message("localhost", "go"), use_awaitable);
        for (int i = 0; i < 500 && handled < 100; ++i) co_await sleep_for(std::chrono::milliseconds(10));
        co_await s.async_close(use_awaitable);
    });
    CHECK(handled == 100);
    CHECK(most == 4);
    drain(fx, srv);
}
