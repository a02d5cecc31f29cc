// The README "run" demo: starts a throwaway Prosody on loopback, logs in over
// STARTTLS + SCRAM, pings the server and asks for its disco#info, printing
// the replies and round-trip times, then shuts everything down.
//
// The session part (run_client) is the example to read: everything is a
// co_await on an Asio operation.
#include <xmpp/session.hpp>

#include "testbed/servers.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace asio = boost::asio;
using asio::use_awaitable;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

asio::awaitable<void> run_client(xmpp::session_options opts) {
    xmpp::session s(co_await asio::this_coro::executor, std::move(opts));

    auto t0 = std::chrono::steady_clock::now();
    co_await s.async_connect(use_awaitable);
    std::printf("connected as %s with %s in %.1f ms\n", std::string(s.address().str()).c_str(),
                s.sasl_mechanism().c_str(), ms_since(t0));

    // XEP-0199 ping to our server.
    const std::string server(s.address().domainpart());
    t0 = std::chrono::steady_clock::now();
    auto pong = co_await s.async_send_iq(xmpp::make_iq(xmpp::iq_type::get, server, "ping", "urn:xmpp:ping"),
                                         use_awaitable);
    std::printf("ping: %s  (%.2f ms)\n", pong.to_string().c_str(), ms_since(t0));

    // XEP-0030 disco#info: what the server is and supports.
    t0 = std::chrono::steady_clock::now();
    auto info = co_await s.async_send_iq(
        xmpp::make_iq(xmpp::iq_type::get, server, "query", "http://jabber.org/protocol/disco#info"), use_awaitable);
    const double rtt = ms_since(t0);
    auto query = xmpp::iq_view(info.root()).payload();
    std::string features;
    int count = 0;
    for (auto c : xmpp::xml::children(query)) {
        if (c.name() == "identity")
            std::printf("disco#info: identity %s/%s \"%s\"\n", std::string(c.attr("category")).c_str(),
                        std::string(c.attr("type")).c_str(), std::string(c.attr("name")).c_str());
        if (c.name() == "feature") {
            features += features.empty() ? "" : " ";
            features += c.attr("var");
            ++count;
        }
    }
    std::printf("disco#info: %d features: %s  (%.2f ms)\n", count, features.c_str(), rtt);

    co_await s.async_close(use_awaitable);
    std::printf("closed cleanly\n");
}

} // namespace

int main() {
    try {
        auto t0 = std::chrono::steady_clock::now();
        xmpp::testbed::prosody_server server; // throwaway, loopback, own CA
        std::printf("prosody started on 127.0.0.1:%u in %.0f ms (pid %d)\n", server.c2s_port(), ms_since(t0),
                    static_cast<int>(server.pid()));

        xmpp::session_options opts;
        opts.address = xmpp::jid::parse("alice@" + server.domain());
        opts.password = server.accounts().at(0).password;
        opts.host = "127.0.0.1"; // no DNS for a loopback server
        opts.port = server.c2s_port();
        opts.tls.ca_file = server.ca_file().string(); // trust the throwaway CA only
        opts.tls.use_system_store = false;
        opts.sasl.mechanisms = {"SCRAM-SHA-256"};

        asio::io_context io;
        std::exception_ptr failure;
        asio::co_spawn(io, run_client(std::move(opts)), [&](std::exception_ptr e) { failure = e; });
        io.run();
        if (failure) std::rethrow_exception(failure);
        server.stop();
        std::printf("prosody stopped\n");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xmpp-demo: %s\n", e.what());
        return 1;
    }
}
