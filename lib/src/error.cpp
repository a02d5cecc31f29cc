#include <xmpp/error.hpp>

namespace xmpp {

namespace {

class category_impl final : public boost::system::error_category {
public:
    constexpr category_impl() noexcept : error_category(0x3f6a2d9c81b44e07ULL) {}
    const char* name() const noexcept override { return "xmpp"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::not_connected: return "the session is not connected";
        case errc::already_connected: return "the session is already connected or connecting";
        case errc::session_closed: return "the session closed before the operation completed";
        case errc::timeout: return "the operation timed out";
        case errc::peer_closed: return "the peer closed the stream";
        case errc::tls_required: return "the server offers no TLS and plaintext is not allowed";
        case errc::starttls_failed: return "the server refused STARTTLS";
        case errc::tls_injection: return "data followed <proceed/> before the TLS handshake";
        case errc::unexpected_element: return "unexpected element during negotiation";
        case errc::negotiation_stuck: return "no usable stream feature left, session not ready";
        case errc::bind_failed: return "resource binding failed";
        case errc::bad_stream_header: return "unusable stream header from the peer";
        case errc::invalid_argument: return "invalid argument";
        case errc::send_queue_full: return "outbound queue full: the peer does not read";
        case errc::callback_failed: return "an application callback threw";
        }
        return ev == 0 ? "no error" : "unknown xmpp error " + std::to_string(ev);
    }
};

constexpr category_impl category_instance;

} // namespace

const boost::system::error_category& error_category() noexcept { return category_instance; }

} // namespace xmpp
