// Stream errors, RFC 6120 4.9.
#include <xmpp/stream_error.hpp>

#include "detail/error_children.hpp"

#include <array>
#include <string>

namespace xmpp {

namespace {

struct condition_info {
    std::string_view name;    // element name (4.9.3.x)
    std::string_view message; // what it means, for error_code::message()
};

// Indexed by stream_errc value - 1, in RFC order (4.9.3.1 .. 4.9.3.25).
constexpr std::array<condition_info, 25> conditions{{
    {"bad-format", "the entity sent XML that cannot be processed"},
    {"bad-namespace-prefix", "unsupported or missing namespace prefix"},
    {"conflict", "a new stream conflicts with this one"},
    {"connection-timeout", "no traffic on the stream for too long"},
    {"host-gone", "the addressed host is no longer served here"},
    {"host-unknown", "the addressed host is not served here"},
    {"improper-addressing", "a stanza lacks a required 'to' or 'from' address"},
    {"internal-server-error", "internal server error"},
    {"invalid-from", "the 'from' address is not authorized for this stream"},
    {"invalid-namespace", "invalid stream or content namespace"},
    {"invalid-xml", "the XML is invalid for this stream"},
    {"not-authorized", "data sent before the stream was authenticated"},
    {"not-well-formed", "the XML is not well-formed"},
    {"policy-violation", "a local service policy was violated"},
    {"remote-connection-failed", "the server cannot connect to a remote entity needed for this stream"},
    {"reset", "the stream must be re-established (e.g. new security or credentials)"},
    {"resource-constraint", "the server lacks the resources to serve the stream"},
    {"restricted-xml", "restricted XML (comment, PI, DTD, entity reference...) was sent"},
    {"see-other-host", "the server redirects the stream to another host"},
    {"system-shutdown", "the server is shutting down"},
    {"undefined-condition", "undefined stream error condition"},
    {"unsupported-encoding", "the stream encoding is not supported (UTF-8 is required)"},
    {"unsupported-feature", "a mandatory stream feature is not supported"},
    {"unsupported-stanza-type", "the first-level element is not supported"},
    {"unsupported-version", "the stream version is not supported"},
}};

static_assert(static_cast<std::size_t>(stream_errc::unsupported_version) == conditions.size());

class stream_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps categories equal even if several instances exist
    // (e.g. across shared objects).
    constexpr stream_category_impl() noexcept : error_category(0x8e1d3b5a7c604f21ULL) {}

    const char* name() const noexcept override { return "xmpp.stream"; }

    std::string message(int ev) const override {
        if (ev == 0) return "no error";
        if (ev < 0 || static_cast<std::size_t>(ev) > conditions.size())
            return "unknown stream error " + std::to_string(ev);
        return std::string(conditions[static_cast<std::size_t>(ev) - 1].message);
    }
};

} // namespace

const boost::system::error_category& stream_category() noexcept {
    static constexpr stream_category_impl cat;
    return cat;
}

std::string_view to_string(stream_errc e) noexcept {
    auto i = static_cast<std::size_t>(e);
    if (i == 0 || i > conditions.size()) return {};
    return conditions[i - 1].name;
}

std::optional<stream_errc> stream_errc_from_string(std::string_view name) noexcept {
    for (std::size_t i = 0; i < conditions.size(); ++i)
        if (conditions[i].name == name) return static_cast<stream_errc>(i + 1);
    return std::nullopt;
}

xml::element stream_error::to_element() const {
    xml::element e("stream:error", xml::ns::stream);
    auto root = e.root();
    // A value outside the enum would produce an element with no name:
    // fall back to the condition meant for "anything else" (4.9.3.21).
    auto name = to_string(condition);
    if (name.empty()) name = to_string(stream_errc::undefined_condition);
    auto cond = root.append(name, xml::ns::streams_errors);
    if (condition == stream_errc::see_other_host && !see_other_host.empty())
        cond.set_text(see_other_host); // 4.9.3.19: the new host is the element's text
    if (!text.empty()) {
        auto t = root.append("text", xml::ns::streams_errors);
        if (!lang.empty()) t.set_attr("xml:lang", lang);
        t.set_text(text);
    }
    if (app_specific) root.append_copy(app_specific.root());
    return e;
}

std::optional<stream_error> stream_error::from_element(xml::node n) {
    if (!n || !n.is("error", xml::ns::stream)) return std::nullopt;
    stream_error err;
    const auto parts = detail::scan_error_children(n, xml::ns::streams_errors);
    // 4.9.3: a missing or unknown condition counts as <undefined-condition/>.
    err.condition = parts.condition ? stream_errc_from_string(parts.condition.name())
                                          .value_or(stream_errc::undefined_condition)
                                    : stream_errc::undefined_condition;
    if (err.condition == stream_errc::see_other_host) err.see_other_host = parts.condition.text();
    if (parts.text) {
        err.text = parts.text.text();
        err.lang = std::string(parts.text.attr("xml:lang"));
    }
    if (parts.app_specific) err.app_specific = xml::element::copy_of(parts.app_specific);
    return err;
}

} // namespace xmpp
