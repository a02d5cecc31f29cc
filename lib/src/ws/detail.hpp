// Private to lib/src/ws: the host-meta document parsers of XEP-0156 (sans-io,
// in host_meta.cpp; tests call them directly).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xmpp::ws::detail {

/// The link relation of an RFC 7395 endpoint (XEP-0156 "Link Format").
inline constexpr std::string_view websocket_rel = "urn:xmpp:alt-connections:websocket";

/// What a host-meta document lists.
struct host_meta_links {
    bool parsed = false;            ///< the document is well-formed and of the expected kind
    std::string error;              ///< why not (when !parsed)
    std::vector<std::string> hrefs; ///< href of each websocket_rel link, in document order
};

/// An XRD document (RFC 6415 3.1, namespace
/// http://docs.oasis-open.org/ns/xri/xrd-1.0): the <Link rel=... href=.../>
/// children of the root <XRD/>. pugixml never loads external entities and
/// expands none but the predefined ones.
host_meta_links parse_xrd(std::string_view body);

/// A JRD document (RFC 6415 Appendix A, JSON): the "links" array's objects
/// whose "rel" is websocket_rel and "href" a string. Nesting deeper than 32
/// levels is refused (Boost.JSON's default).
host_meta_links parse_jrd(std::string_view body);

} // namespace xmpp::ws::detail
