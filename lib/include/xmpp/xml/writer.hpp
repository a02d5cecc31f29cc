// Serializer for elements and stream headers. It never emits what
// xml::reader would reject: text and attribute values are escaped, names,
// UTF-8 and XML 1.0 characters are checked, and namespaces stay bound.
#pragma once

#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include <xmpp/xml/element.hpp>
#include <xmpp/xml/error.hpp>
#include <xmpp/xml/stream_header.hpp>

namespace xmpp::xml {

/// Append the serialization of `n` to `out`.
///
/// `stream_ns` is the default namespace of the stream the element is written
/// on: an xmlns declaration on the root equal to it is omitted, and one is
/// added when the element's namespace differs and is not declared. Prefixes
/// the element inherited from its context are declared on the root.
///
/// On error `out` is left as it was and an xml::errc is returned.
boost::system::error_code write(node n, std::string& out, std::string_view stream_ns = {});

/// Serialization of `n` (throws nothing; returns "" for an element that
/// cannot be serialized).
std::string to_string(node n);

/// Append `<stream:stream ...>` (with an XML declaration when `xml_decl`).
/// Attribute values are escaped; empty ones are omitted.
void write_stream_header(const stream_header& h, std::string& out, bool xml_decl = true);

/// Append the stream end tag for a header written by write_stream_header.
void write_stream_close(const stream_header& h, std::string& out);

/// Append escaped character data (& < > and CR as references) to `out`.
/// Stops with errc::invalid_utf8 / invalid_char at the first bad character
/// (what was escaped before it stays in `out`).
boost::system::error_code escape_text(std::string_view in, std::string& out);
/// Append an escaped attribute value (& < > " ' and tab, LF, CR as character
/// references, so that they survive attribute-value normalization).
boost::system::error_code escape_attr(std::string_view in, std::string& out);

} // namespace xmpp::xml
