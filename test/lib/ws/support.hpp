// Helpers of the WebSocket tests: running coroutines to completion, reading
// whole messages, and a WebSocket peer written by hand over a raw socket for
// what our transport never sends (binary and fragmented messages, pings,
// bad UTF-8, a handshake without the subprotocol).
#pragma once

#include "test_catch.hpp"

#include <xmpp/tls.hpp>
#include <xmpp/transport.hpp>
#include <xmpp/websocket.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ws_test {

namespace asio = boost::asio;
using boost::system::error_code;
using boost::system::system_error;
using tcp = asio::ip::tcp;
using transport_ptr = std::unique_ptr<xmpp::transport>;
using namespace std::chrono_literals;

// Runs `a` on `io` until it completes (then stops `io`), at most `limit`;
// rethrows its exception (Catch2 failures inside coroutines included).
template <class T>
T run_co(asio::io_context& io, asio::awaitable<T> a, std::chrono::seconds limit = 30s) {
    std::optional<T> v;
    std::exception_ptr ep;
    bool done = false;
    asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T r) {
        done = true;
        ep = e;
        if (!e) v = std::move(r);
        io.stop();
    });
    io.restart();
    io.run_for(limit);
    REQUIRE(done);
    if (ep) std::rethrow_exception(ep);
    return std::move(*v);
}

inline void run_co(asio::io_context& io, asio::awaitable<void> a, std::chrono::seconds limit = 30s) {
    std::exception_ptr ep;
    bool done = false;
    asio::co_spawn(io, std::move(a), [&](std::exception_ptr e) {
        done = true;
        ep = e;
        io.stop();
    });
    io.restart();
    io.run_for(limit);
    REQUIRE(done);
    if (ep) std::rethrow_exception(ep);
}

// The error_code an awaitable throws (system_error), or {} when it succeeds.
template <class T>
asio::awaitable<error_code> error_of(asio::awaitable<T> a) {
    try {
        co_await std::move(a);
    } catch (const system_error& e) {
        co_return e.code();
    }
    co_return error_code{};
}

// As error_of, with the exception's text.
template <class T>
asio::awaitable<std::pair<error_code, std::string>> failure_of(asio::awaitable<T> a) {
    try {
        co_await std::move(a);
    } catch (const system_error& e) {
        co_return std::pair<error_code, std::string>{e.code(), e.what()};
    }
    co_return std::pair<error_code, std::string>{};
}

// A connected loopback pair (the kernel completes the TCP handshake).
inline std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& io) {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket c(io);
    c.connect(acc.local_endpoint());
    tcp::socket s = acc.accept();
    return {std::move(c), std::move(s)};
}

// Reads one whole message with reads of at most `chunk` bytes. A
// message_complete() that comes early or late shows as a wrong message (the
// caller compares), as bytes of two messages in one read would.
inline asio::awaitable<std::string> read_message(xmpp::transport& t, std::size_t chunk = 4096,
                                                 std::size_t* reads = nullptr) {
    std::string msg;
    std::vector<char> buf(chunk);
    for (;;) {
        error_code ec;
        const std::size_t n = t.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block) {
            co_await t.wait_read();
            continue;
        }
        if (ec) throw system_error(ec, "read_message");
        REQUIRE(n > 0);
        REQUIRE(n <= chunk);
        if (reads) ++*reads;
        msg.append(buf.data(), n);
        if (t.message_complete()) co_return msg;
    }
}

// Reads (and drops) until an error; returns it.
inline asio::awaitable<error_code> read_error(xmpp::transport& t) {
    char buf[4096];
    for (;;) {
        error_code ec;
        t.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block) {
            try {
                co_await t.wait_read();
            } catch (const system_error& e) {
                co_return e.code();
            }
            continue;
        }
        if (ec) co_return ec;
    }
}

// --- The hand-written peer -------------------------------------------------------------

struct raw_frame {
    bool fin = false;
    int opcode = 0;
    bool masked = false;
    std::string payload; // unmasked
    // A Close frame's status code (RFC 6455 5.5.1), 0 when it has none.
    unsigned close_code() const {
        return payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1])
                                   : 0;
    }
};

// RFC 6455 5.2 framing, masked with a fixed key when `mask` (a client's frames).
inline std::string frame(int opcode, std::string_view payload, bool fin = true, bool mask = false) {
    std::string f;
    f += static_cast<char>((fin ? 0x80 : 0) | opcode);
    const int m = mask ? 0x80 : 0;
    const std::uint64_t n = payload.size();
    if (n < 126) {
        f += static_cast<char>(m | static_cast<int>(n));
    } else if (n < 65536) {
        f += static_cast<char>(m | 126);
        f += static_cast<char>(n >> 8);
        f += static_cast<char>(n & 0xff);
    } else {
        f += static_cast<char>(m | 127);
        for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 0xff);
    }
    if (mask) {
        const char key[4] = {0x12, 0x34, 0x56, 0x78};
        f.append(key, 4);
        for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ key[i % 4]);
    } else {
        f += payload;
    }
    return f;
}

inline std::string close_payload(unsigned code) {
    std::string p;
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code & 0xff);
    return p;
}

// Sec-WebSocket-Accept for a key (RFC 6455 4.2.2 step 5.4).
inline std::string accept_key(const std::string& key) {
    const std::string in = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
    unsigned char out[64];
    const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
    return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

inline std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// The value of header `name` in an HTTP head ("" when absent; the first one).
inline std::string header_value(const std::string& head, const std::string& name) {
    const std::string h = lower(head);
    const auto at = h.find("\r\n" + lower(name) + ":");
    if (at == std::string::npos) return {};
    auto b = at + 2 + name.size() + 1;
    const auto e = head.find("\r\n", b);
    while (b < e && (head[b] == ' ' || head[b] == '\t')) ++b;
    return head.substr(b, e - b);
}

// The status code of an HTTP response head.
inline int status_of(const std::string& head) {
    const auto sp = head.find(' ');
    return sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
}

struct raw_peer {
    explicit raw_peer(tcp::socket s) : sock(std::move(s)) {}

    tcp::socket sock;
    std::string in; // read, not consumed yet

    asio::awaitable<void> fill() {
        char b[4096];
        const std::size_t n = co_await sock.async_read_some(asio::buffer(b), asio::use_awaitable);
        in.append(b, n);
    }
    asio::awaitable<std::string> read_exact(std::size_t n) {
        while (in.size() < n) co_await fill();
        std::string out = in.substr(0, n);
        in.erase(0, n);
        co_return out;
    }
    asio::awaitable<std::string> read_head() {
        std::size_t at;
        while ((at = in.find("\r\n\r\n")) == std::string::npos) co_await fill();
        std::string head = in.substr(0, at + 4);
        in.erase(0, at + 4);
        co_return head;
    }
    asio::awaitable<void> send(std::string s) {
        co_await asio::async_write(sock, asio::buffer(s), asio::use_awaitable);
    }
    asio::awaitable<raw_frame> read_frame() {
        raw_frame f;
        const std::string h = co_await read_exact(2);
        f.fin = (h[0] & 0x80) != 0;
        f.opcode = h[0] & 0x0f;
        f.masked = (h[1] & 0x80) != 0;
        std::uint64_t n = static_cast<unsigned char>(h[1]) & 0x7f;
        if (n == 126 || n == 127) {
            const std::string ext = co_await read_exact(n == 126 ? 2 : 8);
            n = 0;
            for (char c : ext) n = (n << 8) | static_cast<unsigned char>(c);
        }
        std::string key;
        if (f.masked) key = co_await read_exact(4);
        f.payload = co_await read_exact(static_cast<std::size_t>(n));
        if (f.masked)
            for (std::size_t i = 0; i < f.payload.size(); ++i) f.payload[i] = static_cast<char>(f.payload[i] ^ key[i % 4]);
        co_return f;
    }
    // True when the peer closed TCP with nothing more sent.
    asio::awaitable<bool> at_eof() {
        if (!in.empty()) co_return false;
        char b[64];
        error_code ec;
        const std::size_t n = co_await sock.async_read_some(asio::buffer(b), asio::redirect_error(asio::use_awaitable, ec));
        co_return n == 0 && ec == asio::error::eof;
    }

    // Server side of the opening handshake: reads the request and answers
    // 101, with Sec-WebSocket-Protocol: `protocol` unless it is empty.
    asio::awaitable<std::string> accept(std::string protocol = "xmpp") {
        std::string head = co_await read_head();
        std::string res = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: " +
                          accept_key(header_value(head, "Sec-WebSocket-Key")) + "\r\n";
        if (!protocol.empty()) res += "Sec-WebSocket-Protocol: " + protocol + "\r\n";
        res += "\r\n";
        co_await send(res);
        co_return head;
    }
};

// A client upgrade request for `target` with `extra` header lines (each
// ending in CRLF).
inline std::string upgrade_request(const std::string& target, const std::string& extra) {
    return "GET " + target +
           " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
           extra + "\r\n";
}

} // namespace ws_test
