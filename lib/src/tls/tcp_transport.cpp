// The plain TCP transport: the socket itself, in non-blocking mode.
#include "detail.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace xmpp::tls {

namespace detail {

std::string remote_text(const asio::ip::tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return {};
    auto addr = ep.address().to_string();
    if (ep.address().is_v6()) addr = "[" + addr + "]";
    return addr + ":" + std::to_string(ep.port());
}

tcp_transport::tcp_transport(asio::ip::tcp::socket sock) : sock_(std::move(sock)) {
    // read_some() must report would_block rather than block.
    error_code ec;
    sock_.non_blocking(true, ec);
    // Stanzas are small and a peer waits for each (SASL steps, IQs): without
    // this, Nagle holds the second of two small writes until the peer's
    // delayed ACK (~40 ms on Linux).  The writer batches stanzas itself.
    sock_.set_option(asio::ip::tcp::no_delay(true), ec);
}

std::size_t tcp_transport::read_some(asio::mutable_buffer buf, error_code& ec) {
    if (buf.size() == 0) {
        ec = asio::error::invalid_argument; // 0 always comes with an error
        return 0;
    }
    // A closed socket gives bad_descriptor (asio checks before any syscall).
    return sock_.read_some(buf, ec);
}

// The operation's own awaitable, not a coroutine around it: a frame less
// per wait (every stanza read waits once).
asio::awaitable<void> tcp_transport::wait_read() {
    return sock_.async_wait(asio::ip::tcp::socket::wait_read, asio::use_awaitable);
}

asio::awaitable<void> tcp_transport::write(std::string_view data) {
    // The socket is non-blocking: try at once, and suspend (a trip through
    // the scheduler) only for what the kernel did not take.
    error_code ec;
    const std::size_t n = sock_.write_some(asio::buffer(data.data(), data.size()), ec);
    if (ec && ec != asio::error::would_block) throw boost::system::system_error(ec, "write");
    if (n == data.size()) co_return;
    data.remove_prefix(n);
    co_await asio::async_write(sock_, asio::buffer(data.data(), data.size()), asio::use_awaitable);
}

std::size_t tcp_transport::try_write(std::string_view data, error_code& ec) {
    ec = {};
    if (data.empty()) return 0;
    const std::size_t n = sock_.write_some(asio::buffer(data.data(), data.size()), ec);
    if (!ec && n < data.size()) ec = asio::error::would_block;
    return n;
}

asio::awaitable<void> tcp_transport::shutdown() {
    sock_.shutdown(asio::ip::tcp::socket::shutdown_send);
    co_return;
}

void tcp_transport::close() noexcept {
    error_code ec;
    sock_.close(ec);
}

} // namespace detail

std::unique_ptr<transport> make_tcp_transport(asio::ip::tcp::socket sock) {
    return std::make_unique<detail::tcp_transport>(std::move(sock));
}

} // namespace xmpp::tls
