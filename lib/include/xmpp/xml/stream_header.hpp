// The attributes of a <stream:stream> start tag (RFC 6120 4.7).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace xmpp::xml {

struct stream_header {
    std::string from;
    std::string to;
    std::string id;
    std::string version; ///< "1.0" for RFC 6120 streams; empty for pre-1.0 peers
    std::string lang;    ///< xml:lang
    /// The content namespace (default namespace): jabber:client, jabber:server,
    /// jabber:component:accept...
    std::string default_ns;
    /// Other namespace declarations, prefix -> name (the "stream" prefix among
    /// them), in document order.
    std::vector<std::pair<std::string, std::string>> prefixes;
    /// Qualified name of the stream element; "stream:stream" unless the peer
    /// chose another prefix.
    std::string qname = "stream:stream";
};

} // namespace xmpp::xml
