// TEMPORARY link stubs, replaced by the w13-sasl and w13-ws branches.
#include <xmpp/negotiator.hpp>
#include <xmpp/websocket.hpp>
#include <stdexcept>
namespace xmpp {
}
namespace xmpp::ws {
const boost::system::error_category& category() noexcept { return boost::system::generic_category(); }
url parse_url(std::string_view, boost::system::error_code&) { throw std::logic_error("stub"); }
asio::awaitable<std::unique_ptr<transport>> connect(std::unique_ptr<transport>, const options&) { throw std::logic_error("stub"); }
asio::awaitable<std::unique_ptr<transport>> accept(std::unique_ptr<transport>, const options&) { throw std::logic_error("stub"); }
asio::awaitable<std::vector<std::string>> discover(std::string, const discovery_options&) { throw std::logic_error("stub"); }
}
