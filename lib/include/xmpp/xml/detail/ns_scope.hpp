// Namespace declarations in force outside an element: those of the stream
// header that carried it (RFC 6120 4.8: the content namespace and the stream
// prefix are declared there, not on each stanza).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xmpp::xml::detail {

struct ns_scope {
    std::string default_ns;
    /// prefix -> namespace name, in declaration order.
    std::vector<std::pair<std::string, std::string>> prefixes;

    /// Namespace bound to `prefix` ("" = default), or "" when unbound.
    std::string_view lookup(std::string_view prefix) const noexcept {
        if (prefix.empty()) return default_ns;
        for (const auto& [p, uri] : prefixes)
            if (p == prefix) return uri;
        return {};
    }
    void clear() {
        default_ns.clear();
        prefixes.clear();
    }
};

} // namespace xmpp::xml::detail
