// Stanza errors (RFC 6120 section 8.3): the error_code enum and category, the
// error types, and the <error/> element, parsed and built both ways.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <boost/system/error_code.hpp>

#include <xmpp/xml/element.hpp>

namespace xmpp {

/// Every defined stanza error condition (RFC 6120 8.3.3), in RFC order.
/// Value 0 is reserved for "no error".
enum class stanza_errc {
    bad_request = 1,
    conflict,
    feature_not_implemented,
    forbidden,
    gone,
    internal_server_error,
    item_not_found,
    jid_malformed,
    not_acceptable,
    not_allowed,
    not_authorized,
    policy_violation,
    recipient_unavailable,
    redirect,
    registration_required,
    remote_server_not_found,
    remote_server_timeout,
    resource_constraint,
    service_unavailable,
    subscription_required,
    undefined_condition,
    unexpected_request,
};

/// The category of stanza_errc; name() is "xmpp.stanza".
const boost::system::error_category& stanza_category() noexcept;

inline boost::system::error_code make_error_code(stanza_errc e) noexcept {
    return {static_cast<int>(e), stanza_category()};
}

/// The element name of a condition, e.g. "item-not-found"; "" for a value
/// that is not a stanza_errc.
std::string_view to_string(stanza_errc e) noexcept;
/// The condition for an element name; nullopt when not a defined condition.
std::optional<stanza_errc> stanza_errc_from_string(std::string_view name) noexcept;

/// The error types of RFC 6120 8.3.2: what the sender may do about the error.
enum class stanza_error_type {
    auth,      ///< retry after providing credentials
    cancel,    ///< do not retry
    continue_, ///< proceed, the condition was only a warning
    modify,    ///< retry after changing the data sent
    wait,      ///< retry after waiting, the error is temporary
};

/// The 'type' attribute value, e.g. "continue" for continue_.
std::string_view to_string(stanza_error_type t) noexcept;
/// The error type for an attribute value; nullopt when not a defined value.
std::optional<stanza_error_type> stanza_error_type_from_string(std::string_view s) noexcept;

/// The type RFC 6120 8.3.3 associates with a condition (the first one where
/// it allows several; cancel for undefined-condition, which allows any).
stanza_error_type default_type(stanza_errc c) noexcept;

/// A stanza error (RFC 6120 8.3.2):
///
///     <error [by='generator'] type='error-type'>
///       <defined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
///       [<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='..'>..</text>]
///       [application-specific condition element]
///     </error>
///
/// The <error/> element itself is in the content namespace of the stanza
/// that carries it (jabber:client, jabber:server...).
struct stanza_error {
    stanza_error_type type = stanza_error_type::cancel;
    stanza_errc condition = stanza_errc::undefined_condition;
    /// Descriptive text for humans; "" when absent.
    std::string text;
    /// xml:lang of `text`; "" when absent.
    std::string lang;
    /// The 'by' attribute: the JID of the entity that generated the error.
    std::string by;
    /// For gone and redirect: the new address, a URI or IRI (typically
    /// xmpp:...), the character data of the condition (8.3.3.5, 8.3.3.14).
    std::string uri;
    /// The application-specific condition (any namespace but the stanzas
    /// one), or an empty element.
    xml::element app_specific;

    /// undefined-condition of type cancel.
    stanza_error() = default;
    /// `c` with its usual type (default_type) and optional text.
    explicit stanza_error(stanza_errc c, std::string description = {})
        : type(default_type(c)), condition(c), text(std::move(description)) {}
    /// `c` with an explicit type and optional text.
    stanza_error(stanza_error_type t, stanza_errc c, std::string description = {})
        : type(t), condition(c), text(std::move(description)) {}

    /// The error code of `condition`.
    boost::system::error_code code() const noexcept { return make_error_code(condition); }

    /// Build a standalone `<error/>` in `content_ns`.
    xml::element to_element(std::string_view content_ns = xml::ns::client) const;

    /// Append `<error/>` as the last child of `stanza`, in the stanza's own
    /// namespace (whatever content namespace the stream uses); returns it.
    xml::node append_to(xml::node stanza) const;

    /// Parse an `<error/>` element in a content namespace; nullopt when `n`
    /// is not one. Lenient where RFC 6120 lets a receiver be: an unknown or
    /// missing condition gives undefined_condition (8.3.3 end), an absent or
    /// unknown 'type' gives the condition's default_type().
    static std::optional<stanza_error> from_element(xml::node n);

    /// The error carried by a stanza of type 'error'; nullopt when `stanza` is
    /// not a stanza of that type. A missing `<error/>` child (8.3.1 requires
    /// one) gives an undefined_condition error, so that the failure still
    /// reaches whoever waits for the answer.
    static std::optional<stanza_error> from_stanza(xml::node stanza);
};

/// Build the error response to `request` (RFC 6120 8.3.1): same kind,
/// namespace and id, 'to' and 'from' swapped (each only when present),
/// type='error', and `err` as its `<error/>` child. With `include_original`,
/// the request's child elements are copied in before `<error/>` (8.3.2
/// allows the original XML, e.g. to let the sender correct it).
///
/// Returns an empty element when `request` is not a stanza, is itself an
/// error (8.3.1: never answer an error with an error), or is an IQ result
/// (8.2.3: results are not answered).
xml::element make_error_reply(xml::node request, const stanza_error& err,
                              bool include_original = false);

} // namespace xmpp

template <>
struct boost::system::is_error_code_enum<xmpp::stanza_errc> : std::true_type {};
