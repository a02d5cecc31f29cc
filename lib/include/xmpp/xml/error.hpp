// Errors of the XML layer that are not stream errors: what the writer refuses
// to serialize because a conforming reader would reject it.
#pragma once

#include <boost/system/error_code.hpp>

namespace xmpp::xml {

enum class errc {
    invalid_utf8 = 1,  ///< text or attribute value is not valid UTF-8
    invalid_char,      ///< a code point XML 1.0 does not allow (e.g. U+0001, U+FFFE)
    invalid_name,      ///< an element or attribute name that is not an XML Name
    unsupported_node,  ///< a comment, PI, DOCTYPE or declaration node (RFC 6120 11.1)
    unbound_prefix,    ///< a prefix with no namespace declaration in scope
    duplicate_attribute, ///< an attribute twice, or under two prefixes of one namespace
};

/// Category of xml::errc; name() is "xmpp.xml".
const boost::system::error_category& xml_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), xml_category()};
}

} // namespace xmpp::xml

template <>
struct boost::system::is_error_code_enum<xmpp::xml::errc> : std::true_type {};
