// The xmpp.ws error category and ws:// / wss:// URL parsing (RFC 6455 3).
#include <xmpp/websocket.hpp>

#include <boost/asio/ip/address_v6.hpp>

#include <charconv>

namespace xmpp::ws {

namespace {

class ws_category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "xmpp.ws"; }
    std::string message(int v) const override {
        switch (static_cast<errc>(v)) {
        case errc::handshake_failed: return "WebSocket handshake failed";
        case errc::no_subprotocol: return "the peer did not agree on the xmpp WebSocket subprotocol";
        case errc::binary_frame: return "a binary WebSocket message arrived (XMPP sends text messages only)";
        case errc::message_too_large: return "a WebSocket message exceeds the size limit";
        case errc::bad_url: return "not a ws:// or wss:// URL";
        case errc::not_found: return "no XMPP WebSocket endpoint at that path";
        case errc::discovery_failed: return "no XMPP WebSocket endpoint found (XEP-0156)";
        }
        return "unknown WebSocket error";
    }
};

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

bool is_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// RFC 3986 reg-name / IPv4address: unreserved, pct-encoded, sub-delims.
bool host_char(char c) noexcept {
    return is_alnum(c) || std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
}

// What may stand in an HTTP request-target: visible ASCII (RFC 3986 path
// and query characters; anything else must be percent-encoded).
bool target_char(char c) noexcept { return c > 0x20 && c < 0x7f; }

} // namespace

const boost::system::error_category& category() noexcept {
    static const ws_category c;
    return c;
}

url parse_url(std::string_view text, boost::system::error_code& ec) {
    ec = {};
    const auto fail = [&ec] {
        ec = errc::bad_url;
        return url{};
    };
    const auto sep = text.find("://");
    if (sep == std::string_view::npos) return fail();
    url u;
    if (iequals(text.substr(0, sep), "ws"))
        u.secure = false;
    else if (iequals(text.substr(0, sep), "wss"))
        u.secure = true;
    else
        return fail();
    const std::string_view rest = text.substr(sep + 3);
    const auto auth_end = rest.find_first_of("/?#");
    const std::string_view auth = rest.substr(0, auth_end);
    const std::string_view tail = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
    // RFC 6455 3: no fragment; the ws-URI grammar has no userinfo either.
    if (tail.find('#') != std::string_view::npos || auth.find('@') != std::string_view::npos) return fail();

    std::string_view host, port;
    bool has_port = false;
    if (!auth.empty() && auth.front() == '[') {
        const auto rb = auth.find(']');
        if (rb == std::string_view::npos) return fail();
        host = auth.substr(1, rb - 1);
        const std::string_view after = auth.substr(rb + 1);
        if (!after.empty()) {
            if (after.front() != ':') return fail();
            port = after.substr(1);
            has_port = true;
        }
        boost::system::error_code aec;
        (void)asio::ip::make_address_v6(std::string(host), aec);
        if (aec) return fail();
    } else {
        const auto colon = auth.rfind(':');
        host = auth.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = auth.substr(colon + 1);
            has_port = true;
        }
        for (char c : host)
            if (!host_char(c)) return fail();
    }
    if (host.empty()) return fail();
    u.port = u.secure ? 443 : 80;
    if (has_port && !port.empty()) { // "host:" means the default port (RFC 3986 3.2.3)
        unsigned v = 0;
        const auto [p, e] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (e != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) return fail();
        u.port = static_cast<std::uint16_t>(v);
    }
    for (char c : tail)
        if (!target_char(c)) return fail();
    u.host.reserve(host.size());
    for (char c : host) u.host += lower(c);
    // Appended, not "/" + tail: GCC 12 warns (-Wrestrict, a false positive).
    u.target.clear();
    if (tail.empty() || tail.front() == '?') u.target += '/';
    u.target += tail;
    return u;
}

} // namespace xmpp::ws
