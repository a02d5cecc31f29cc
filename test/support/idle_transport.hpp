// A transport that is never read and writes nothing: for tests of what sees
// a transport only through its properties (SASL asks it about TLS) or its
// defaults. Derive to change a property.
#pragma once

#include <xmpp/transport.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace xmpp::test {

struct idle_transport : transport {
    explicit idle_transport(asio::any_io_executor ex) : ex_(std::move(ex)) {}
    asio::any_io_executor get_executor() override { return ex_; }
    std::size_t read_some(asio::mutable_buffer, error_code& ec) override {
        ec = asio::error::would_block;
        return 0;
    }
    asio::awaitable<void> wait_read() override { co_return; }
    asio::awaitable<void> write(std::string_view) override { co_return; }
    asio::awaitable<void> shutdown() override { co_return; }
    void close() noexcept override {}
    bool is_secure() const noexcept override { return false; }

    asio::any_io_executor ex_;
};

} // namespace xmpp::test
