// Shared by stream_error.cpp and stanza_error.cpp: the children of an error
// element (RFC 6120 4.9.2 and 8.3.2).
#pragma once

#include <xmpp/xml/element.hpp>

#include <string_view>

namespace xmpp::detail {

/// The first defined condition, the first <text/> (several may come, in
/// different languages) and the first element in another namespace (at most
/// one application-specific condition is allowed) of an error element.
struct error_children {
    xml::node condition;
    xml::node text;
    xml::node app_specific;
};

inline error_children scan_error_children(xml::node error, std::string_view conditions_ns) {
    error_children out;
    for (xml::node c : xml::children(error)) {
        if (c.ns() == conditions_ns) {
            if (c.name() == "text") {
                if (!out.text) out.text = c;
            } else if (!out.condition) {
                out.condition = c;
            }
        } else if (!out.app_specific) {
            out.app_specific = c;
        }
    }
    return out;
}

} // namespace xmpp::detail
