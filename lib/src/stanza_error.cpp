// Stanza errors, RFC 6120 8.3.
#include <xmpp/stanza_error.hpp>
#include <xmpp/stanza.hpp>

#include "detail/error_children.hpp"

#include <array>
#include <string>

namespace xmpp {

namespace {

using T = stanza_error_type;

struct condition_info {
    std::string_view name;    // element name (8.3.3.x)
    T type;                   // usual error type (8.3.3.x)
    std::string_view message; // what it means, for error_code::message()
};

// Indexed by stanza_errc value - 1, in RFC order (8.3.3.1 .. 8.3.3.22). Where
// the RFC allows two types the first one is taken; undefined-condition
// allows any, cancel is the safe one.
constexpr std::array<condition_info, 22> conditions{{
    {"bad-request", T::modify, "the request is malformed or cannot be processed"},
    {"conflict", T::cancel, "a resource or session with the same name or address exists"},
    {"feature-not-implemented", T::cancel, "the feature is not implemented by the recipient or a server"},
    {"forbidden", T::auth, "the requester lacks the permissions for this action"},
    {"gone", T::cancel, "the recipient is no longer at this address"},
    {"internal-server-error", T::cancel, "internal server error"},
    {"item-not-found", T::cancel, "the addressed JID or item cannot be found"},
    {"jid-malformed", T::modify, "malformed XMPP address"},
    {"not-acceptable", T::modify, "the request does not meet the recipient's criteria"},
    {"not-allowed", T::cancel, "no entity is allowed to perform this action"},
    {"not-authorized", T::auth, "missing or improper credentials"},
    {"policy-violation", T::modify, "a local service policy was violated"},
    {"recipient-unavailable", T::wait, "the recipient is temporarily unavailable"},
    {"redirect", T::modify, "the request is redirected to another address"},
    {"registration-required", T::auth, "prior registration is required"},
    {"remote-server-not-found", T::cancel, "the remote server does not exist or cannot be resolved"},
    {"remote-server-timeout", T::wait, "the remote server cannot be reached in time"},
    {"resource-constraint", T::wait, "the recipient or server lacks the resources to serve the request"},
    {"service-unavailable", T::cancel, "the service is not available"},
    {"subscription-required", T::auth, "a prior subscription is required"},
    {"undefined-condition", T::cancel, "undefined stanza error condition"},
    {"unexpected-request", T::wait, "the request was not expected at this time"},
}};

static_assert(static_cast<std::size_t>(stanza_errc::unexpected_request) == conditions.size());

constexpr std::array<std::string_view, 5> type_names{"auth", "cancel", "continue", "modify", "wait"};

const condition_info* info(stanza_errc e) noexcept {
    auto i = static_cast<std::size_t>(e);
    return i == 0 || i > conditions.size() ? nullptr : &conditions[i - 1];
}

class stanza_category_impl final : public boost::system::error_category {
public:
    // Fixed id: equal categories across shared objects.
    constexpr stanza_category_impl() noexcept : error_category(0x3f9c0e6a2d51b748ULL) {}

    const char* name() const noexcept override { return "xmpp.stanza"; }

    std::string message(int ev) const override {
        if (ev == 0) return "no error";
        if (auto* i = info(static_cast<stanza_errc>(ev))) return std::string(i->message);
        return "unknown stanza error " + std::to_string(ev);
    }
};

// Qualified name for a child of `parent` in the parent's own namespace: reuse
// its prefix so the child resolves to the same namespace without a new
// declaration.
std::string child_qname(xml::node parent, std::string_view local) {
    auto p = parent.prefix();
    if (p.empty()) return std::string(local);
    std::string q;
    q.reserve(p.size() + 1 + local.size());
    q.append(p).append(1, ':').append(local);
    return q;
}

} // namespace

const boost::system::error_category& stanza_category() noexcept {
    static constexpr stanza_category_impl cat;
    return cat;
}

std::string_view to_string(stanza_errc e) noexcept {
    auto* i = info(e);
    return i ? i->name : std::string_view{};
}

std::optional<stanza_errc> stanza_errc_from_string(std::string_view name) noexcept {
    for (std::size_t i = 0; i < conditions.size(); ++i)
        if (conditions[i].name == name) return static_cast<stanza_errc>(i + 1);
    return std::nullopt;
}

std::string_view to_string(stanza_error_type t) noexcept {
    auto i = static_cast<std::size_t>(t);
    return i < type_names.size() ? type_names[i] : std::string_view{};
}

std::optional<stanza_error_type> stanza_error_type_from_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < type_names.size(); ++i)
        if (type_names[i] == s) return static_cast<stanza_error_type>(i);
    return std::nullopt;
}

stanza_error_type default_type(stanza_errc c) noexcept {
    auto* i = info(c);
    return i ? i->type : T::cancel;
}

// --- element form ------------------------------------------------------------

namespace {

void fill_error(const stanza_error& err, xml::node e) {
    auto type = to_string(err.type);
    e.set_attr("type", type.empty() ? to_string(default_type(err.condition)) : type);
    if (!err.by.empty()) e.set_attr("by", err.by);
    // Outside the enum: send the condition meant for "anything else".
    auto name = to_string(err.condition);
    if (name.empty()) name = to_string(stanza_errc::undefined_condition);
    auto cond = e.append(name, xml::ns::stanzas_errors);
    if ((err.condition == stanza_errc::gone || err.condition == stanza_errc::redirect) &&
        !err.uri.empty())
        cond.set_text(err.uri); // 8.3.3.5, 8.3.3.14: the new address is the text
    if (!err.text.empty()) {
        auto t = e.append("text", xml::ns::stanzas_errors);
        if (!err.lang.empty()) t.set_attr("xml:lang", err.lang);
        t.set_text(err.text);
    }
    if (err.app_specific) e.append_copy(err.app_specific.root());
}

} // namespace

xml::element stanza_error::to_element(std::string_view content_ns) const {
    xml::element e("error", content_ns);
    fill_error(*this, e.root());
    return e;
}

xml::node stanza_error::append_to(xml::node stanza) const {
    auto e = stanza.append(child_qname(stanza, "error"), stanza.ns());
    fill_error(*this, e);
    return e;
}

std::optional<stanza_error> stanza_error::from_element(xml::node n) {
    if (!n || n.name() != "error" || !is_content_ns(n.ns())) return std::nullopt;
    stanza_error err;
    const auto parts = detail::scan_error_children(n, xml::ns::stanzas_errors);
    // 8.3.3: a missing or unknown condition counts as <undefined-condition/>.
    err.condition = parts.condition ? stanza_errc_from_string(parts.condition.name())
                                          .value_or(stanza_errc::undefined_condition)
                                    : stanza_errc::undefined_condition;
    if (err.condition == stanza_errc::gone || err.condition == stanza_errc::redirect)
        err.uri = parts.condition.text();
    if (parts.text) {
        err.text = parts.text.text();
        err.lang = std::string(parts.text.attr("xml:lang"));
    }
    if (parts.app_specific) err.app_specific = xml::element::copy_of(parts.app_specific);
    err.type = stanza_error_type_from_string(n.attr("type")).value_or(default_type(err.condition));
    err.by = std::string(n.attr("by"));
    return err;
}

std::optional<stanza_error> stanza_error::from_stanza(xml::node stanza) {
    if (classify(stanza) == stanza_kind::other || stanza.attr("type") != "error")
        return std::nullopt;
    if (auto e = stanza.child("error")) // in the stanza's namespace
        return from_element(e);
    return stanza_error();
}

xml::element make_error_reply(xml::node request, const stanza_error& err, bool include_original) {
    auto kind = classify(request);
    if (kind == stanza_kind::other) return {};
    auto type = request.attr("type");
    if (type == "error") return {};                           // 8.3.1
    if (kind == stanza_kind::iq && type == "result") return {}; // 8.2.3
    xml::element e(request.name(), request.ns());
    auto r = e.root();
    r.set_attr("type", "error");
    if (auto id = request.find_attr("id")) r.set_attr("id", *id);
    // 8.3.1: swap the addresses; an absent one stays absent.
    if (auto from = request.find_attr("from")) r.set_attr("to", *from);
    if (auto to = request.find_attr("to")) r.set_attr("from", *to);
    if (include_original)
        for (xml::node c : xml::children(request)) r.append_copy(c);
    err.append_to(r);
    return e;
}

} // namespace xmpp
