// Stream errors (RFC 6120 section 4.9): the error_code enum and category, and
// the <stream:error/> element, parsed and built both ways.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <boost/system/error_code.hpp>

#include <xmpp/xml/element.hpp>

namespace xmpp {

/// Every defined stream error condition (RFC 6120 4.9.3), in RFC order.
/// Value 0 is reserved for "no error".
enum class stream_errc {
    bad_format = 1,
    bad_namespace_prefix,
    conflict,
    connection_timeout,
    host_gone,
    host_unknown,
    improper_addressing,
    internal_server_error,
    invalid_from,
    invalid_namespace,
    invalid_xml,
    not_authorized,
    not_well_formed,
    policy_violation,
    remote_connection_failed,
    reset,
    resource_constraint,
    restricted_xml,
    see_other_host,
    system_shutdown,
    undefined_condition,
    unsupported_encoding,
    unsupported_feature,
    unsupported_stanza_type,
    unsupported_version,
};

/// The category of stream_errc; name() is "xmpp.stream".
const boost::system::error_category& stream_category() noexcept;

inline boost::system::error_code make_error_code(stream_errc e) noexcept {
    return {static_cast<int>(e), stream_category()};
}

/// The element name of a condition, e.g. "not-well-formed"; "" for a value
/// that is not a stream_errc.
std::string_view to_string(stream_errc e) noexcept;
/// The condition for an element name; nullopt when not a defined condition.
std::optional<stream_errc> stream_errc_from_string(std::string_view name) noexcept;

/// A stream error (RFC 6120 4.9.2):
///
///     <stream:error>
///       <defined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>
///       [<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='..'>..</text>]
///       [application-specific condition element]
///     </stream:error>
struct stream_error {
    stream_errc condition = stream_errc::undefined_condition;
    /// Descriptive text for humans (4.9.2); "" when absent.
    std::string text;
    /// xml:lang of `text`; "" when absent.
    std::string lang;
    /// For see_other_host: the host (and maybe port) to reconnect to, the
    /// character data of <see-other-host/> (4.9.3.19).
    std::string see_other_host;
    /// The application-specific condition (any namespace but the streams
    /// one), or an empty element.
    xml::element app_specific;

    /// The error code of `condition`.
    boost::system::error_code code() const noexcept { return make_error_code(condition); }

    /// Build `<stream:error>` (prefix "stream" bound to the streams namespace).
    xml::element to_element() const;

    /// Parse a `<stream:error>` element; nullopt when `n` is not `error` in
    /// the streams namespace (resolved, whatever its prefix). A condition this
    /// library does not know, or a missing one, gives undefined_condition
    /// (4.9.3: unknown conditions are treated as <undefined-condition/>).
    static std::optional<stream_error> from_element(xml::node n);
};

} // namespace xmpp

template <>
struct boost::system::is_error_code_enum<xmpp::stream_errc> : std::true_type {};
