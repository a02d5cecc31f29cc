// RFC 7395 WebSocket transport on Boost.Beast, and XEP-0156 discovery over
// HTTPS. Every Beast instantiation of the library is in this translation unit
// (each such TU costs ~40 s to compile): the adapter that makes an
// xmpp::transport a Beast stream, the WebSocket transport, both handshakes
// and the host-meta HTTP client.
//
// Reads. read_some() must never block, and Beast's synchronous read does I/O
// whenever its own buffer runs dry. So a read-ahead coroutine decodes into an
// inbox: when Beast may need the socket, it runs an asynchronous read into a
// ZERO-size buffer (which holds no buffer while it waits, handles pings,
// pongs and Close frames, and returns once Beast holds payload of the current
// message); otherwise, and right after that, Beast's synchronous read, which
// then only copies from Beast's buffer. A frame tracker in the adapter
// follows the frames Beast received and how far Beast has read, so the
// read-ahead knows when the synchronous read is safe and needs no
// asynchronous read (a post and a reactor poll) per message. The reader is
// woken when Beast has to wait for the socket, so that a read_some() loop
// gets every message already received, as over TCP. read_some() returns
// bytes of one message per call; the last byte of a message whose end has
// not been seen yet is held back (a fragmented message may end with an empty
// frame, RFC 6455 5.4), so message_complete() is exact.
//
// Writes. Frames are serialized by Beast's synchronous write into a pending
// buffer of the adapter (which never blocks), then flushed to the layer below
// in one write: write_messages() sends N messages in one lower write. Beast's
// own writes (pongs, close frames, the handshake) go through the same buffer;
// one flush round runs at a time.
#include "detail.hpp"

#include <xmpp/websocket.hpp>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace xmpp::ws {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using boost::system::system_error;
using io_handler = asio::any_completion_handler<void(error_code, std::size_t)>;
using done_handler = asio::any_completion_handler<void(error_code)>;

// Completes `h` on its own executor, never inside the initiating call (Asio's
// rule for intermediate handlers: Beast's operations rely on it).
// (append() keeps the handler's associated executor, allocator and slot.)
void post_complete(const asio::any_io_executor& ex, io_handler h, error_code ec, std::size_t n) {
    asio::post(ex, asio::append(std::move(h), ec, n));
}

// Completes `h` from a completion that is already asynchronous.
template <class Handler, class... Args>
void dispatch_complete(const asio::any_io_executor& ex, Handler h, Args... args) {
    asio::dispatch(ex, asio::append(std::move(h), args...));
}

template <class MutableBufferSequence>
asio::mutable_buffer first_buffer(const MutableBufferSequence& bs) {
    for (auto it = asio::buffer_sequence_begin(bs); it != asio::buffer_sequence_end(bs); ++it) {
        asio::mutable_buffer b = *it;
        if (b.size() != 0) return b;
    }
    return {};
}

// --- The frame tracker ---------------------------------------------------------------
//
// Follows the frame structure of the bytes the adapter hands to Beast (after
// the HTTP upgrade) and where Beast's reading stands in it, to tell whether
// Beast's synchronous read can return the next payload byte, a message end
// or a Close without I/O. The read-ahead then skips an asynchronous read (a
// post and a reactor poll per message). It only ever errs towards "no": the
// asynchronous read is always correct.

class frame_tracker {
public:
    /// Bytes Beast received, in order.
    void feed(const unsigned char* p, std::size_t n) {
        while (n > 0) {
            if (in_http_) { // the upgrade request or answer: no body (RFC 9110 15.2: 101 has none)
                const unsigned char c = *p++;
                --n;
                http_tail_ = (http_tail_ << 8) | c;
                if ((http_tail_ & 0xffffffffu) == 0x0d0a0d0au) in_http_ = false;
                continue;
            }
            if (!frames_.empty() && frames_.back().delivered < frames_.back().len) {
                auto& f = frames_.back();
                const std::uint64_t take = std::min<std::uint64_t>(n, f.len - f.delivered);
                f.delivered += take;
                p += take;
                n -= static_cast<std::size_t>(take);
                continue;
            }
            head_[have_++] = *p++;
            --n;
            if (have_ < 2) continue;
            const unsigned len7 = head_[1] & 0x7f;
            const std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((head_[1] & 0x80) ? 4 : 0);
            if (have_ < need) continue;
            frame f;
            f.fin = (head_[0] & 0x80) != 0;
            f.op = head_[0] & 0x0f;
            if (len7 < 126) {
                f.len = len7;
            } else {
                f.len = 0;
                for (std::size_t i = 2; i < (len7 == 126 ? 4u : 10u); ++i) f.len = (f.len << 8) | head_[i];
            }
            have_ = 0;
            frames_.push_back(f);
        }
    }

    /// A read of Beast's returned n payload bytes (one frame's at most), or
    /// 0 with `done` (an empty final frame), or 0 without (positioned at a
    /// frame whose payload is buffered).
    void on_read(std::size_t n, bool done) {
        skip();
        if (frames_.empty()) return;
        auto& f = frames_.front();
        if (n > 0)
            f.consumed += n;
        else if (done && is_data(f) && f.len == 0)
            frames_.pop_front();
    }

    /// True when Beast's synchronous read needs no I/O.
    bool ready() const noexcept {
        for (const auto& f : frames_) {
            if (is_data(f)) {
                if (f.consumed < f.len) return f.delivered > f.consumed; // a payload byte in Beast's buffer?
                if (f.len == 0 && f.fin) return true;                   // the end of a message
                continue;                                               // consumed, or an empty fragment
            }
            if (f.delivered < f.len) return false; // Beast wants a control frame whole
            if (f.op == 0x8) return true;          // Close: the read ends there
        }
        return false; // the next header is not all here
    }

private:
    struct frame {
        unsigned op = 0;
        bool fin = false;
        std::uint64_t len = 0, delivered = 0, consumed = 0;
    };
    static bool is_data(const frame& f) noexcept { return f.op < 0x8; }

    // Drops what Beast is past: control frames, consumed data frames, empty
    // fragments, up to the data frame it is in or reaches next.
    void skip() {
        while (!frames_.empty()) {
            const auto& f = frames_.front();
            const bool current = is_data(f) && (f.consumed < f.len || (f.len == 0 && f.fin));
            if (current) return;
            frames_.pop_front();
        }
    }

    bool in_http_ = true;
    std::uint32_t http_tail_ = 0;
    unsigned char head_[14]{};
    std::size_t have_ = 0;
    std::deque<frame> frames_;
};

// --- The lower transport's shared state --------------------------------------------
//
// Owned by the WebSocket transport and, while they run, by the coroutines of
// the adapter (a wait, a flush round), so that none of them outlives what it
// touches.

struct lower_state : std::enable_shared_from_this<lower_state> {
    explicit lower_state(std::unique_ptr<transport> t)
        : lower(std::move(t)), ex(lower->get_executor()), wake(ex) {
        wake.expires_at(asio::steady_timer::time_point::max());
    }

    std::unique_ptr<transport> lower;
    asio::any_io_executor ex;

    // Output: `out` waits for the next round, `flight` is being written.
    std::string out, flight;
    std::uint64_t appended = 0, written = 0; // bytes ever appended / written
    bool flushing = false;                   // a round is running
    error_code write_error;                  // sticky: the lower write failed
    // A write of Beast's own (pong, close frame, handshake) waiting for its
    // bytes to be written; Beast's write lock allows one at a time.
    std::optional<io_handler> beast_write;
    asio::cancellation_slot beast_write_slot;
    std::uint64_t beast_write_end = 0;
    std::size_t beast_write_size = 0;
    asio::steady_timer wake; // cancelled after each round: wakes flush() waiters
    bool lower_shut = false; // lower->shutdown() was called
    bool closed = false;     // lower->close() was called
    // Called when a read of Beast's finds nothing in the layer below and has
    // to wait: everything received so far has been decoded.
    std::function<void()> on_read_wait;
    frame_tracker frames; // what Beast received (fed by every read below)

    void received(asio::mutable_buffer b, std::size_t n) {
        if (n > 0) frames.feed(static_cast<const unsigned char*>(b.data()), n);
    }

    template <class ConstBufferSequence>
    std::size_t append(const ConstBufferSequence& bs) {
        if (write_error) return 0;
        std::size_t n = 0;
        for (auto it = asio::buffer_sequence_begin(bs); it != asio::buffer_sequence_end(bs); ++it) {
            asio::const_buffer b = *it;
            out.append(static_cast<const char*>(b.data()), b.size());
            n += b.size();
        }
        appended += n;
        return n;
    }

    void close() noexcept {
        closed = true;
        lower->close();
    }

    void complete_beast_write() {
        if (!beast_write || (!write_error && written < beast_write_end)) return;
        beast_write_slot.clear();
        io_handler h(std::move(*beast_write)); // move-construct: see ARCHITECTURE (1.81 pitfall)
        beast_write.reset();
        const std::size_t n = write_error ? 0 : beast_write_size;
        dispatch_complete(ex, std::move(h), write_error, n);
    }
};

// One flush round: everything appended so far, in one lower write.
asio::awaitable<void> write_round(std::shared_ptr<lower_state> st) {
    st->flushing = true;
    st->flight.swap(st->out);
    error_code ec;
    try {
        co_await st->lower->write(st->flight);
    } catch (const system_error& e) {
        ec = e.code();
    } catch (const std::bad_alloc&) {
        ec = make_error_code(boost::system::errc::not_enough_memory);
    }
    st->written += st->flight.size();
    st->flight.clear();
    if (st->flight.capacity() > 16 * 1024) std::string().swap(st->flight); // no big buffer kept while idle
    st->flushing = false;
    if (ec && !st->write_error) st->write_error = ec;
    if (st->write_error) {
        st->out.clear();
        st->written = st->appended;
    }
    st->complete_beast_write();
    st->wake.cancel();
}

// Waits until everything appended before the call is written; runs rounds
// itself when no other round is running, and then also drains what others
// appended meanwhile. Throws the lower write's error.
asio::awaitable<void> flush(std::shared_ptr<lower_state> st) {
    const std::uint64_t target = st->appended;
    for (;;) {
        if (st->write_error) throw system_error(st->write_error, "WebSocket write");
        if (st->written >= target && (st->flushing || st->out.empty())) co_return;
        if (!st->flushing) {
            co_await write_round(st);
            continue;
        }
        auto r = co_await st->wake.async_wait(asio::as_tuple(asio::use_awaitable));
        (void)r; // cancelled by the round that ended, or by our own cancellation:
        const auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            throw system_error(asio::error::operation_aborted, "WebSocket write");
    }
}

// Writes Beast's own bytes when nobody else flushes.
asio::awaitable<void> drain(std::shared_ptr<lower_state> st) {
    while (!st->write_error && !st->flushing && !st->out.empty()) co_await write_round(st);
}

// The end of a WebSocket connection below it (Beast's teardown): what is
// pending (the close frame), then TLS close_notify and TCP FIN. Does not wait
// for the peer's end (the transport contract: shutdown() never waits).
asio::awaitable<error_code> teardown_lower(std::shared_ptr<lower_state> st) {
    try {
        co_await flush(st);
        if (!st->lower_shut && !st->closed) {
            st->lower_shut = true;
            co_await st->lower->shutdown();
        }
    } catch (const system_error& e) {
        co_return e.code();
    }
    co_return error_code{};
}

// Lingering close (RFC 9112 9.6) after an HTTP error answer and our FIN:
// reads and drops what the client still sends (64 KiB, 1 s at most), so
// that closing does not reset the connection before it read the answer.
asio::awaitable<void> linger(std::shared_ptr<lower_state> st) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(st->ex, std::chrono::seconds(1));
    char buf[4096];
    std::size_t total = 0;
    try {
        while (total < 64 * 1024 && !st->closed) {
            error_code ec;
            const std::size_t n = st->lower->read_some(asio::buffer(buf), ec);
            if (ec == asio::error::would_block) {
                auto r = co_await (st->lower->wait_read() || timer.async_wait(asio::use_awaitable));
                if (r.index() == 1) break;
                continue;
            }
            if (ec) break; // eof: the client is done
            total += n;
        }
    } catch (const system_error&) {
    }
}

// A read that found nothing: waits until the lower may have bytes, retries.
asio::awaitable<std::pair<error_code, std::size_t>> wait_then_read(std::shared_ptr<lower_state> st,
                                                                   asio::mutable_buffer b) {
    for (;;) {
        try {
            co_await st->lower->wait_read();
        } catch (const system_error& e) {
            co_return std::pair<error_code, std::size_t>{e.code(), 0};
        }
        if (st->closed) co_return std::pair<error_code, std::size_t>{asio::error::operation_aborted, 0};
        error_code ec;
        const std::size_t n = st->lower->read_some(b, ec);
        st->received(b, n);
        if (ec != asio::error::would_block) co_return std::pair<error_code, std::size_t>{ec, n};
    }
}

void start_read(const std::shared_ptr<lower_state>& st, asio::mutable_buffer b, io_handler h) {
    error_code ec;
    std::size_t n = 0;
    if (st->closed)
        ec = asio::error::operation_aborted;
    else if (b.size() != 0) {
        n = st->lower->read_some(b, ec); // bytes may be there already: no wait
        st->received(b, n);
    }
    if (b.size() == 0 || ec != asio::error::would_block) {
        post_complete(st->ex, std::move(h), ec, n);
        return;
    }
    if (st->on_read_wait) st->on_read_wait();
    auto slot = asio::get_associated_cancellation_slot(h);
    // Cancellation reaches the lower wait through co_spawn's cancellation state.
    asio::co_spawn(st->ex, wait_then_read(st, b),
                   asio::bind_cancellation_slot(
                       slot, [ex = st->ex, h = std::move(h)](std::exception_ptr e,
                                                             std::pair<error_code, std::size_t> r) mutable {
                           if (e) r = {asio::error::operation_aborted, 0};
                           dispatch_complete(ex, std::move(h), r.first, r.second);
                       }));
}

void start_write(const std::shared_ptr<lower_state>& st, std::size_t n, io_handler h) {
    if (st->write_error || st->closed) {
        const error_code ec = st->write_error ? st->write_error : error_code(asio::error::operation_aborted);
        post_complete(st->ex, std::move(h), ec, 0);
        return;
    }
    st->beast_write_slot = asio::get_associated_cancellation_slot(h);
    st->beast_write.emplace(std::move(h));
    st->beast_write_end = st->appended;
    st->beast_write_size = n;
    if (st->beast_write_slot.is_connected()) {
        // A cancelled write leaves a frame half sent: the transport is done.
        st->beast_write_slot.assign([w = std::weak_ptr<lower_state>(st)](asio::cancellation_type) {
            if (auto s = w.lock()) s->close();
        });
    }
    if (!st->flushing) asio::co_spawn(st->ex, drain(st), asio::detached);
}

void start_teardown(const std::shared_ptr<lower_state>& st, done_handler h) {
    auto slot = asio::get_associated_cancellation_slot(h);
    asio::co_spawn(st->ex, teardown_lower(st),
                   asio::bind_cancellation_slot(
                       slot, [ex = st->ex, h = std::move(h)](std::exception_ptr e, error_code ec) mutable {
                           if (e) ec = asio::error::operation_aborted;
                           dispatch_complete(ex, std::move(h), ec);
                       }));
}

// --- The adapter: an xmpp::transport as a Beast stream --------------------------
//
// AsyncStream (async_read_some via read_some/wait_read, async_write_some
// into the pending buffer) and SyncStream (write_some appends; read_some is
// only reached when Beast's buffer holds what it needs, see the top), plus
// Beast's teardown and close_socket customization points (hidden friends,
// found by ADL).

class transport_stream {
public:
    using executor_type = asio::any_io_executor;

    explicit transport_stream(std::shared_ptr<lower_state> st) : st_(std::move(st)) {}

    executor_type get_executor() const noexcept { return st_->ex; }
    const std::shared_ptr<lower_state>& state() const noexcept { return st_; }

    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
        return asio::async_initiate<ReadToken, void(error_code, std::size_t)>(
            [st = st_](auto handler, asio::mutable_buffer b) { start_read(st, b, io_handler(std::move(handler))); },
            token, first_buffer(buffers));
    }

    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
        return asio::async_initiate<WriteToken, void(error_code, std::size_t)>(
            [st = st_](auto handler, const ConstBufferSequence& bs) {
                const std::size_t n = st->closed ? 0 : st->append(bs);
                start_write(st, n, io_handler(std::move(handler)));
            },
            token, buffers);
    }

    template <class MutableBufferSequence>
    std::size_t read_some(const MutableBufferSequence& buffers, error_code& ec) {
        // Non-blocking: would_block here would fail the stream (never happens:
        // Beast's synchronous read only runs when the tracker says it needs no I/O).
        const auto b = first_buffer(buffers);
        const std::size_t n = st_->lower->read_some(b, ec);
        st_->received(b, n);
        return n;
    }
    template <class MutableBufferSequence>
    std::size_t read_some(const MutableBufferSequence& buffers) {
        error_code ec;
        const std::size_t n = read_some(buffers, ec);
        if (ec) throw system_error(ec, "WebSocket read");
        return n;
    }

    template <class ConstBufferSequence>
    std::size_t write_some(const ConstBufferSequence& buffers, error_code& ec) {
        ec = {};
        if (st_->write_error || st_->closed) {
            ec = st_->write_error ? st_->write_error : error_code(asio::error::operation_aborted);
            return 0;
        }
        return st_->append(buffers);
    }
    template <class ConstBufferSequence>
    std::size_t write_some(const ConstBufferSequence& buffers) {
        error_code ec;
        const std::size_t n = write_some(buffers, ec);
        if (ec) throw system_error(ec, "WebSocket write");
        return n;
    }

    // Beast's timeouts (closing handshake) end the connection with this.
    friend void beast_close_socket(transport_stream& s) { s.st_->close(); }

    // Synchronous teardown, after Beast failed the connection inside a
    // synchronous read (invalid UTF-8): the close frame is pending; flush it
    // and shut down in the background.
    friend void teardown(beast::role_type, transport_stream& s, error_code& ec) {
        ec = {};
        asio::co_spawn(s.st_->ex, teardown_lower(s.st_), asio::detached);
    }

    template <class TeardownHandler>
    friend void async_teardown(beast::role_type, transport_stream& s, TeardownHandler&& h) {
        start_teardown(s.st_, done_handler(std::forward<TeardownHandler>(h)));
    }

private:
    std::shared_ptr<lower_state> st_;
};

using ws_stream = websocket::stream<transport_stream, false>; // no permessage-deflate

bool header_safe(std::string_view v) noexcept {
    return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

const boost::system::error_category& http_category() {
    static const auto& c = make_error_code(http::error::end_of_stream).category();
    return c;
}

const boost::system::error_category& websocket_category() {
    static const auto& c = make_error_code(websocket::error::closed).category();
    return c;
}

// The connection is gone from the peer's side.
bool peer_gone(const error_code& ec) {
    return ec == asio::error::broken_pipe || ec == asio::error::connection_reset || ec == asio::error::eof ||
           ec == tls::errc::stream_truncated;
}

// The error of a failed read or close, as the transport reports it.
error_code read_error_of(error_code ec) {
    if (ec == websocket::error::closed) return asio::error::eof; // the closing handshake is done
    if (ec == websocket::error::message_too_big) return errc::message_too_large;
    if (ec == beast::error::timeout) return asio::error::timed_out;
    return ec;
}

[[noreturn]] void throw_handshake_error(error_code ec, const websocket::response_type* res, const std::string& where) {
    if (ec == websocket::error::upgrade_declined && res)
        throw system_error(errc::handshake_failed, where + ": HTTP " + std::to_string(res->result_int()) + " " +
                                                       std::string(res->reason()));
    if (ec == http::error::end_of_stream || ec == http::error::partial_message)
        throw system_error(asio::error::eof, where + ": connection closed by the peer");
    if (ec == http::error::buffer_overflow)
        throw system_error(errc::handshake_failed, where + ": the answer's header exceeds 1536 bytes");
    if (ec.category() == http_category() || ec.category() == websocket_category())
        throw system_error(errc::handshake_failed, where + ": " + ec.message());
    throw system_error(ec, where);
}

// The path of a request target (origin-form, or absolute-form from a proxy).
std::string_view target_path(std::string_view target) {
    if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
        const auto auth = target.find("//") + 2;
        const auto slash = target.find('/', auth);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    return target.substr(0, target.find('?'));
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 6455 4.1: Sec-WebSocket-Protocol lists tokens, comma separated, in
// one or more header fields.
bool offers_xmpp(const http::request<http::empty_body>& req) {
    const auto range = req.equal_range(http::field::sec_websocket_protocol);
    for (auto f = range.first; f != range.second; ++f) {
        std::string_view v(f->value().data(), f->value().size());
        while (!v.empty()) {
            const auto comma = v.find(',');
            if (trim(v.substr(0, comma)) == "xmpp") return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

// --- The WebSocket transport ----------------------------------------------------------

constexpr std::size_t inbox_high_water = 64 * 1024; // the read-ahead pauses above it
constexpr std::size_t inbox_low_water = 16 * 1024;  // ... and resumes below it
constexpr std::size_t copy_chunk = 2048;            // > Beast's 1536-byte read buffer

// What the transport and its read-ahead coroutine share: Beast's stream and
// the inbox of decoded messages.
struct ws_core : std::enable_shared_from_this<ws_core> {
    ws_core(std::shared_ptr<lower_state> s, const options& o)
        : st(std::move(s)), ws(st), close_timeout(o.close_timeout), data_ready(st->ex), pump_wake(st->ex) {
        ws.read_message_max(o.max_message_bytes); // Beast checks each frame header against it
        ws.auto_fragment(false);                  // one message, one frame
        ws.write_buffer_bytes(1024);              // the client's masking buffer (kept while open)
        ws.text(true);
        data_ready.expires_at(asio::steady_timer::time_point::max());
        pump_wake.expires_at(asio::steady_timer::time_point::max());
    }

    std::shared_ptr<lower_state> st;
    ws_stream ws;
    std::chrono::milliseconds close_timeout;
    websocket::close_code close_code = websocket::close_code::normal;

    // The inbox: decoded payload not yet read, in_[in_pos..]; in_base is the
    // stream offset of in_[0]; ends holds the stream offsets where messages end.
    std::string in;
    std::size_t in_pos = 0;
    std::uint64_t in_base = 0;
    std::deque<std::uint64_t> ends;
    bool open_msg = false; // bytes of an unfinished message are in the inbox
    error_code pending;    // what reads report once the inbox is drained (sticky)

    bool pump_started = false, pump_running = false, paused = false;
    bool shut = false;   // shutdown() started
    bool closed = false; // close() was called
    bool complete = false;
    asio::steady_timer data_ready; // cancelled when the inbox became readable
    asio::steady_timer pump_wake;  // cancelled when a paused read-ahead may go on

    std::size_t buffered() const noexcept { return in.size() - in_pos; }

    // read_some() can return something: a byte of a message whose end is
    // known, or all but the last byte of one whose end is not, or an error.
    bool readable() const noexcept { return closed || pending || buffered() > (ends.empty() ? 1u : 0u); }

    void signal() {
        if (readable()) data_ready.cancel();
    }

    void end_message() {
        if (!open_msg) return; // an empty message carries no element: skipped
        ends.push_back(in_base + in.size());
        open_msg = false;
    }

    void opened() {
        // Beast's "handshake" timeout bounds the closing handshake too; no idle
        // timeout (the session keeps the stream alive its own way).
        websocket::stream_base::timeout t{};
        t.handshake_timeout = close_timeout.count() > 0
                                  ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(close_timeout)
                                  : websocket::stream_base::none();
        t.idle_timeout = websocket::stream_base::none();
        t.keep_alive_pings = false;
        ws.set_option(t);
        st->on_read_wait = [w = weak_from_this()] {
            if (auto c = w.lock()) c->signal();
        };
    }

    std::size_t read_some(asio::mutable_buffer buf, error_code& ec) {
        ec = {};
        if (buf.size() == 0) {
            ec = asio::error::invalid_argument; // 0 always comes with an error
            return 0;
        }
        if (closed) {
            ec = asio::error::operation_aborted;
            return 0;
        }
        const std::uint64_t pos = in_base + in_pos;
        // Up to the message's end; when that is unknown, all but the last
        // byte, which waits to learn whether it ends the message (a
        // fragmented message may end with an empty frame, RFC 6455 5.4).
        const std::size_t limit =
            !ends.empty() ? static_cast<std::size_t>(ends.front() - pos) : (buffered() > 0 ? buffered() - 1 : 0);
        if (limit == 0) {
            ec = pending ? pending : error_code(asio::error::would_block);
            return 0;
        }
        const std::size_t n = std::min(limit, buf.size());
        std::memcpy(buf.data(), in.data() + in_pos, n);
        in_pos += n;
        complete = !ends.empty() && pos + n == ends.front();
        if (complete) ends.pop_front();
        if (in_pos == in.size()) { // drained: no read buffer is kept while idle
            in_base += in.size();
            std::string().swap(in);
            in_pos = 0;
        } else if (in_pos >= inbox_low_water && in_pos >= in.size() / 2) {
            in.erase(0, in_pos);
            in_base += in_pos;
            in_pos = 0;
        }
        if (paused && buffered() < inbox_low_water) pump_wake.cancel();
        return n;
    }

    bool pump_should_stop() const noexcept { return closed || shut || pending; }

    // The read-ahead: decodes whatever Beast can deliver into the inbox and
    // tells the reader when Beast has to wait for the layer below (so that a
    // read_some() loop gets every message already received, as over TCP).
    // Each step is a zero-size asynchronous read, which holds no buffer while
    // it waits and returns once Beast holds payload of the current message
    // (pings, pongs and Close frames are handled inside), then Beast's
    // synchronous read, which then only copies from Beast's buffer.
    static asio::awaitable<void> pump(std::shared_ptr<ws_core> c) {
        static char nothing; // not a null pointer: Beast's UTF-8 check does arithmetic on it
        while (!c->pump_should_stop()) {
            if (c->buffered() >= inbox_high_water) { // back-pressure: the reader is behind
                c->paused = true;
                c->signal();
                auto w = co_await c->pump_wake.async_wait(asio::as_tuple(asio::use_awaitable));
                (void)w;
                c->paused = false;
                continue;
            }
            if (!c->st->frames.ready()) {
                // Nothing Beast can deliver without I/O: wait for it.
                auto r = co_await c->ws.async_read_some(asio::mutable_buffer(&nothing, 0),
                                                        asio::as_tuple(asio::use_awaitable));
                const error_code ec = std::get<0>(r);
                if (c->closed) break;
                if (ec) {
                    // Our own shutdown took the reading over: the stream ends.
                    c->pending = c->shut ? error_code(asio::error::eof) : read_error_of(ec);
                    break;
                }
                c->st->frames.on_read(0, c->ws.is_message_done());
                if (c->ws.got_binary()) { // RFC 7395 3.2: text only
                    c->pending = errc::binary_frame;
                    c->close_code = websocket::close_code::unknown_data; // 1003 (RFC 6455 7.4.1) at shutdown()
                    break;
                }
                if (c->ws.is_message_done()) { // an empty final frame
                    c->end_message();
                    continue;
                }
            }
            if (c->pump_should_stop()) break;
            // Copies from Beast's buffer (and answers pings there): no I/O.
            const std::size_t old = c->in.size();
            c->in.resize(old + copy_chunk);
            error_code rec;
            const std::size_t n = c->ws.read_some(asio::mutable_buffer(c->in.data() + old, copy_chunk), rec);
            c->in.resize(old + n);
            if (!c->st->out.empty() && !c->st->flushing) // a pong, or the Close of a failed read
                asio::co_spawn(c->st->ex, drain(c->st), asio::detached);
            if (rec) {
                c->pending = read_error_of(rec);
                break;
            }
            const bool done = c->ws.is_message_done();
            c->st->frames.on_read(n, done);
            if (c->ws.got_binary()) { // (a new message, read without the wait above)
                c->in.resize(old);
                c->pending = errc::binary_frame;
                c->close_code = websocket::close_code::unknown_data;
                break;
            }
            if (n) c->open_msg = true;
            if (done) c->end_message();
        }
        // Reads report something once the inbox is drained: never would_block
        // with nothing left to wait for.
        if (!c->pending) c->pending = c->closed ? error_code(asio::error::operation_aborted) : error_code(asio::error::eof);
        c->pump_running = false;
        c->data_ready.cancel();
    }

    void start_pump() {
        if (pump_started) return;
        pump_started = pump_running = true;
        asio::co_spawn(st->ex, pump(shared_from_this()), asio::detached);
    }

    // Close frame, the peer's Close frame (bounded by close_timeout), then
    // the lower shutdown. Throws when our side could not be sent.
    asio::awaitable<void> close_handshake(websocket::close_code code) {
        auto self = shared_from_this();
        shut = true;
        pump_wake.cancel(); // a paused read-ahead ends
        if (ws.is_open()) {
            auto r = co_await ws.async_close(websocket::close_reason(code), asio::as_tuple(asio::use_awaitable));
            const error_code ec = std::get<0>(r);
            // A peer that closed first (its Close frame still unread) may make
            // ours fail with EPIPE or a reset: the connection is over anyway.
            if (st->write_error && !peer_gone(st->write_error))
                throw system_error(st->write_error, "WebSocket close");
            const auto cs = co_await asio::this_coro::cancellation_state;
            if (closed || cs.cancelled() != asio::cancellation_type::none)
                throw system_error(asio::error::operation_aborted, "WebSocket close");
            // Otherwise the peer answered (ec empty), went away (eof) or did not
            // answer in time (timeout: Beast closed the layer below): done.
            (void)ec;
        }
        if (!pending) pending = asio::error::eof;
        signal();
        if (!st->lower_shut && !st->closed && !st->write_error) {
            st->lower_shut = true;
            co_await st->lower->shutdown();
        }
    }

    asio::awaitable<void> close_quietly(websocket::close_code code) {
        try {
            co_await close_handshake(code);
        } catch (const system_error&) {
        }
    }

    void close() noexcept {
        closed = true;
        st->on_read_wait = nullptr;
        st->close();
        data_ready.cancel();
        pump_wake.cancel();
    }
};

class ws_transport final : public transport {
public:
    explicit ws_transport(std::shared_ptr<ws_core> c) : c_(std::move(c)) {}
    ws_transport(const ws_transport&) = delete;
    ws_transport& operator=(const ws_transport&) = delete;
    // Ends what still runs on the lower transport (the read-ahead, a flush).
    ~ws_transport() override { c_->close(); }

    asio::any_io_executor get_executor() override { return c_->st->ex; }

    std::size_t read_some(asio::mutable_buffer buf, error_code& ec) override { return c_->read_some(buf, ec); }

    asio::awaitable<void> wait_read() override {
        c_->start_pump();
        for (;;) {
            if (c_->closed) throw system_error(asio::error::operation_aborted, "WebSocket wait_read");
            if (c_->readable() || !c_->pump_running) co_return;
            auto r = co_await c_->data_ready.async_wait(asio::as_tuple(asio::use_awaitable));
            (void)r; // cancelled by the read-ahead, by close(), or by our own cancellation:
            const auto cs = co_await asio::this_coro::cancellation_state;
            if (cs.cancelled() != asio::cancellation_type::none)
                throw system_error(asio::error::operation_aborted, "WebSocket wait_read");
        }
    }

    asio::awaitable<void> write(std::string_view data) override {
        const std::string_view one[1] = {data};
        co_await write_messages(one);
    }

    asio::awaitable<void> write_messages(std::span<const std::string_view> messages) override {
        if (c_->closed) throw system_error(asio::error::operation_aborted, "WebSocket write");
        if (c_->shut || !c_->ws.is_open())
            throw system_error(asio::error::not_connected, "WebSocket write: the WebSocket is closed");
        for (const auto m : messages) {
            error_code ec;
            c_->ws.write(asio::const_buffer(m.data(), m.size()), ec); // frames into the pending buffer
            if (ec) throw system_error(ec, "WebSocket write");
        }
        co_await flush(c_->st);
    }

    asio::awaitable<void> shutdown() override {
        if (c_->closed) throw system_error(asio::error::operation_aborted, "WebSocket shutdown");
        if (c_->shut) co_return;
        co_await c_->close_handshake(c_->close_code);
    }

    void close() noexcept override { c_->close(); }

    bool is_secure() const noexcept override { return c_->st->lower->is_secure(); }
    bool peer_verified() const noexcept override { return c_->st->lower->peer_verified(); }
    int tls_version() const noexcept override { return c_->st->lower->tls_version(); }
    std::vector<std::uint8_t> channel_binding(std::string_view type) const override {
        return c_->st->lower->channel_binding(type);
    }
    std::string remote_endpoint_text() const override { return c_->st->lower->remote_endpoint_text(); }

    bool message_oriented() const noexcept override { return true; }
    bool message_complete() const noexcept override { return c_->complete; }
    bool input_buffered() const noexcept override { return c_->buffered() > 0; }

private:
    std::shared_ptr<ws_core> c_;
};

// Answers an HTTP error to a refused upgrade request, then closes.
asio::awaitable<void> refuse(std::shared_ptr<ws_core> c, http::status status, std::string text) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::server, "asio-xmpp");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::connection, "close");
    res.body() = std::move(text);
    res.body() += '\n';
    res.prepare_payload();
    auto r = co_await http::async_write(c->ws.next_layer(), res, asio::as_tuple(asio::use_awaitable));
    if (!std::get<0>(r)) {
        const error_code down = co_await teardown_lower(c->st);
        if (!down) co_await linger(c->st);
    }
    c->close();
}

// --- Handshakes ---------------------------------------------------------------------

asio::awaitable<std::unique_ptr<transport>> connect_impl(std::unique_ptr<transport> lower, options opts) {
    if (!lower) throw std::invalid_argument("ws::connect: no transport");
    if (opts.host.empty()) throw std::invalid_argument("ws::connect: no host");
    if (opts.target.empty() || !header_safe(opts.host) || !header_safe(opts.target) || !header_safe(opts.origin))
        throw std::invalid_argument("ws::connect: empty target, or CR, LF or NUL in a header value");
    const std::string where = "WebSocket handshake with " + lower->remote_endpoint_text();
    auto st = std::make_shared<lower_state>(std::move(lower));
    auto t = std::make_shared<ws_core>(st, opts);
    t->ws.set_option(websocket::stream_base::decorator([origin = opts.origin](websocket::request_type& req) {
        req.set(http::field::sec_websocket_protocol, "xmpp"); // RFC 7395 3.1
        req.set(http::field::user_agent, "asio-xmpp");
        if (!origin.empty()) req.set(http::field::origin, origin);
    }));
    websocket::response_type res;
    auto r = co_await t->ws.async_handshake(res, opts.host, opts.target, asio::as_tuple(asio::use_awaitable));
    if (const error_code ec = std::get<0>(r)) {
        t->close();
        throw_handshake_error(ec, &res, where);
    }
    t->opened();
    // RFC 7395 3.1: without "xmpp" in the answer no XMPP connection exists and
    // the client MUST close it. (Also when the server picked another one.)
    const std::string proto(res[http::field::sec_websocket_protocol]);
    if (proto != "xmpp" || res.count(http::field::sec_websocket_protocol) != 1) {
        co_await t->close_quietly(websocket::close_code::protocol_error);
        t->close();
        throw system_error(errc::no_subprotocol,
                           where + ": the server did not select the xmpp subprotocol (Sec-WebSocket-Protocol: '" +
                               proto + "')");
    }
    std::unique_ptr<transport> out = std::make_unique<ws_transport>(std::move(t));
    co_return out;
}

asio::awaitable<std::unique_ptr<transport>> accept_impl(std::unique_ptr<transport> lower, options opts) {
    if (!lower) throw std::invalid_argument("ws::accept: no transport");
    const std::string where = "WebSocket handshake from " + lower->remote_endpoint_text();
    auto st = std::make_shared<lower_state>(std::move(lower));
    auto t = std::make_shared<ws_core>(st, opts);

    // The request, read with our own limit (Beast's accept reads into its
    // 1536-byte frame buffer).
    beast::flat_buffer buf(opts.max_header_bytes);
    http::request_parser<http::empty_body> p;
    p.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(opts.max_header_bytes, UINT32_MAX)));
    auto r = co_await http::async_read(t->ws.next_layer(), buf, p, asio::as_tuple(asio::use_awaitable));
    if (const error_code ec = std::get<0>(r)) {
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
            co_await refuse(t, http::status::request_header_fields_too_large, "request header too large");
            throw system_error(errc::handshake_failed, where + ": the request header exceeds " +
                                                           std::to_string(opts.max_header_bytes) + " bytes");
        }
        if (ec.category() == http_category() && ec != http::error::end_of_stream &&
            ec != http::error::partial_message) {
            co_await refuse(t, http::status::bad_request, "malformed request");
            throw system_error(errc::handshake_failed, where + ": malformed HTTP request (" + ec.message() + ")");
        }
        t->close();
        throw_handshake_error(ec, nullptr, where);
    }
    const auto& req = p.get();
    const std::string_view target(req.target().data(), req.target().size());
    if (!opts.path.empty() && target_path(target) != opts.path) {
        co_await refuse(t, http::status::not_found, "no XMPP WebSocket endpoint here");
        throw system_error(errc::not_found, where + ": request for '" + std::string(target) + "', the endpoint is '" +
                                                opts.path + "'");
    }
    if (!websocket::is_upgrade(req)) { // RFC 6455 4.2.1: GET, HTTP/1.1, Upgrade: websocket, Connection: Upgrade
        co_await refuse(t, http::status::bad_request, "not a WebSocket upgrade request");
        throw system_error(errc::handshake_failed, where + ": not a WebSocket upgrade request");
    }
    if (!offers_xmpp(req)) { // RFC 7395 3.1
        co_await refuse(t, http::status::bad_request, "the xmpp WebSocket subprotocol (RFC 7395) is required");
        throw system_error(errc::no_subprotocol, where + ": the request does not offer the xmpp subprotocol");
    }
    if (buf.size() != 0) { // RFC 6455 4.1: the client waits for our answer before it sends
        co_await refuse(t, http::status::bad_request, "data before the handshake answer");
        throw system_error(errc::handshake_failed, where + ": data sent before the handshake answer");
    }
    t->ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
        if (res.result() == http::status::switching_protocols)
            res.set(http::field::sec_websocket_protocol, "xmpp");
        res.set(http::field::server, "asio-xmpp");
    }));
    // Beast checks the rest (version 13: else 426, RFC 6455 4.4; the key) and
    // answers 101, or an error status itself.
    auto r2 = co_await t->ws.async_accept(req, asio::as_tuple(asio::use_awaitable));
    if (const error_code ec = std::get<0>(r2)) {
        t->close();
        throw_handshake_error(ec, nullptr, where);
    }
    t->opened();
    std::unique_ptr<transport> out = std::make_unique<ws_transport>(std::move(t));
    co_return out;
}

// --- XEP-0156 discovery ---------------------------------------------------------------

struct place {
    std::string host;
    std::uint16_t port = 443;
    std::string target;
};

// "host[:port]" for a Host header or a URL (IPv6 literals in brackets).
std::string authority(const place& p, std::uint16_t default_port = 443) {
    std::string a = p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host;
    if (p.port != default_port) a += ":" + std::to_string(p.port);
    return a;
}

// Where a redirect points; only https:// URLs and absolute paths on the same
// host are followed.
std::optional<place> redirect_target(std::string_view loc, const place& from) {
    loc = loc.substr(0, loc.find('#')); // a fragment is of no use here (RFC 7231 7.1.2)
    if (!loc.empty() && loc.front() == '/' && (loc.size() < 2 || loc[1] != '/'))
        return place{from.host, from.port, std::string(loc)};
    constexpr std::string_view https = "https://";
    if (loc.size() < https.size()) return std::nullopt;
    for (std::size_t i = 0; i < https.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(loc[i])) != https[i]) return std::nullopt;
    error_code ec;
    const url u = parse_url("wss://" + std::string(loc.substr(https.size())), ec); // same grammar
    if (ec) return std::nullopt;
    return place{u.host, u.port, u.target};
}

struct fetch_result {
    bool answered = false; // an HTTP answer arrived (any status)
    error_code error;      // no answer: DNS, TCP, TLS, I/O, deadline
    std::string note;      // what this lookup gave, for what()
    std::vector<std::string> hrefs;
};

constexpr int max_redirects = 2;

asio::awaitable<fetch_result> fetch(net::resolver& resolver, const discovery_options& o, const tls::context& ctx,
                                    std::string domain, std::string path, bool json) {
    fetch_result out;
    place at{std::move(domain), o.port, std::move(path)};
    for (int redirects = 0;; ++redirects) {
        const std::string where = "https://" + authority(at) + at.target;
        std::optional<http::response<http::string_body>> res;
        error_code ec;
        std::string why;
        try {
            std::vector<net::connect_target> targets{net::connect_target{at.host, at.port, false}};
            auto conn = co_await net::dial(resolver, std::move(targets), o.timeout);
            auto tls_t = co_await tls::connect(std::move(conn.first), ctx, at.host);
            auto st = std::make_shared<lower_state>(std::move(tls_t));
            transport_stream s(st);
            http::request<http::empty_body> req{http::verb::get, at.target, 11};
            req.set(http::field::host, authority(at));
            req.set(http::field::user_agent, "asio-xmpp");
            req.set(http::field::accept, json ? "application/json" : "application/xrd+xml");
            req.set(http::field::connection, "close");
            co_await http::async_write(s, req, asio::use_awaitable);
            beast::flat_buffer buf(8 * 1024 + o.max_document_bytes);
            http::response_parser<http::string_body> p;
            p.header_limit(8 * 1024);
            p.body_limit(o.max_document_bytes);
            co_await http::async_read(s, buf, p, asio::use_awaitable);
            res.emplace(p.release());
            (void)co_await teardown_lower(st); // close_notify + FIN (errors do not matter now)
            st->close();
        } catch (const system_error& e) {
            if (e.code() == asio::error::operation_aborted) throw; // cancelled, or the deadline
            ec = e.code();
            why = e.what();
        }
        if (ec) {
            // An answer we refuse to read counts as one that lists nothing.
            if (ec == http::error::body_limit) {
                out.answered = true;
                out.note = where + ": larger than " + std::to_string(o.max_document_bytes) + " bytes";
            } else if (ec.category() == http_category() && ec != http::error::end_of_stream &&
                       ec != http::error::partial_message) {
                out.answered = true;
                out.note = where + ": malformed HTTP answer (" + ec.message() + ")";
            } else {
                out.error = ec;
                out.note = where + ": " + why;
            }
            co_return out;
        }
        const unsigned status = res->result_int();
        if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
            const std::string loc((*res)[http::field::location]);
            out.answered = true;
            if (redirects == max_redirects) {
                out.note = where + ": more than " + std::to_string(max_redirects) + " redirects";
                co_return out;
            }
            auto next = redirect_target(loc, at);
            if (!next) {
                out.note = where + ": redirect to '" + loc + "' not followed (only https)";
                co_return out;
            }
            at = std::move(*next);
            continue;
        }
        out.answered = true;
        if (status != 200) {
            out.note = where + ": HTTP " + std::to_string(status) + " " + std::string(res->reason());
            co_return out;
        }
        auto links = json ? detail::parse_jrd(res->body()) : detail::parse_xrd(res->body());
        if (!links.parsed) {
            out.note = where + ": " + links.error;
            co_return out;
        }
        out.hrefs = std::move(links.hrefs);
        out.note = where + ": " + std::to_string(out.hrefs.size()) + " websocket link(s)";
        co_return out;
    }
}

// `f`, or a timed_out result at `deadline`.
asio::awaitable<fetch_result> bounded(asio::awaitable<fetch_result> f, std::chrono::steady_clock::time_point deadline,
                                      std::string what, std::chrono::milliseconds timeout) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    auto wait = timer.async_wait(asio::use_awaitable);
    auto r = co_await (std::move(f) || std::move(wait));
    if (r.index() == 0) co_return std::get<0>(std::move(r));
    fetch_result t;
    t.error = asio::error::timed_out;
    t.note = what + ": no answer within " + std::to_string(timeout.count()) + " ms";
    co_return t;
}

asio::awaitable<std::vector<std::string>> discover_impl(std::string domain, discovery_options o) {
    using namespace asio::experimental::awaitable_operators;
    if (domain.empty() || domain.find_first_of("/?#@ \r\n") != std::string::npos)
        throw std::invalid_argument("ws::discover: not a domain: '" + domain + "'");
    const auto ex = co_await asio::this_coro::executor;
    net::resolver resolver(ex, o.dns);
    tls::client_options topts = o.tls;
    if (topts.alpn.empty()) topts.alpn = {"http/1.1"}; // RFC 7301 6 / RFC 9113 3.1: plain HTTP/1.1
    const tls::context ctx = tls::context::shared_client(topts);
    const auto deadline = std::chrono::steady_clock::now() + o.timeout;
    const place home{domain, o.port, ""};
    const std::string base = "https://" + authority(home);
    auto xrd_fetch = bounded(fetch(resolver, o, ctx, domain, "/.well-known/host-meta", false), deadline,
                             base + "/.well-known/host-meta", o.timeout);
    auto jrd_fetch = bounded(fetch(resolver, o, ctx, domain, "/.well-known/host-meta.json", true), deadline,
                             base + "/.well-known/host-meta.json", o.timeout);
    auto both = co_await (std::move(xrd_fetch) && std::move(jrd_fetch));
    const fetch_result& xrd = std::get<0>(both);
    const fetch_result& jrd = std::get<1>(both);

    std::vector<std::string> out;
    std::size_t insecure = 0, invalid = 0;
    for (const fetch_result* f : {&xrd, &jrd}) {
        for (const auto& href : f->hrefs) {
            error_code ec;
            const url u = parse_url(href, ec);
            if (ec) {
                ++invalid;
                continue;
            }
            if (!u.secure && !o.allow_insecure) {
                ++insecure;
                continue;
            }
            if (std::find(out.begin(), out.end(), href) == out.end()) out.push_back(href);
        }
    }
    if (!out.empty()) co_return out;
    std::string text = "XEP-0156 discovery for " + domain + ": " + xrd.note + "; " + jrd.note;
    if (insecure) text += "; " + std::to_string(insecure) + " ws:// link(s) ignored (allow_insecure is off)";
    if (invalid) text += "; " + std::to_string(invalid) + " link(s) not a ws:// or wss:// URL";
    if (xrd.error && jrd.error) throw system_error(xrd.error, text);
    throw system_error(errc::discovery_failed, text);
}

} // namespace

// Plain functions that copy the options into the coroutine frame: the
// caller's may be a temporary gone by the time a lazy awaitable runs.

asio::awaitable<std::unique_ptr<transport>> connect(std::unique_ptr<transport> lower, const options& opts) {
    return connect_impl(std::move(lower), opts);
}

asio::awaitable<std::unique_ptr<transport>> accept(std::unique_ptr<transport> lower, const options& opts) {
    return accept_impl(std::move(lower), opts);
}

asio::awaitable<std::vector<std::string>> discover(std::string domain, const discovery_options& opts) {
    return discover_impl(std::move(domain), opts);
}

} // namespace xmpp::ws
