// Namespace helpers shared by element.cpp and writer.cpp.
#pragma once

#include <pugixml.hpp>

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace xmpp::xml::detail {

inline std::string_view sv(const char* s) noexcept { return s ? std::string_view(s) : std::string_view{}; }

inline std::string_view prefix_of(std::string_view qname) noexcept {
    auto c = qname.find(':');
    return c == std::string_view::npos ? std::string_view{} : qname.substr(0, c);
}

/// Whether attribute `name` declares `prefix` ("" = the default namespace).
inline bool declares(const char* name, std::string_view prefix) noexcept {
    // Cheap first-byte test: most attributes are not declarations.
    if (name[0] != 'x' || name[1] != 'm') return false;
    const std::string_view n(name);
    if (prefix.empty()) return n == "xmlns";
    return n.size() == 6 + prefix.size() && n.starts_with("xmlns:") && n.substr(6) == prefix;
}

/// Declarations in force during a walk down a tree: (prefix, namespace),
/// innermost last. Used by the reader's checks and by the writer.
using ns_decls = std::vector<std::pair<std::string_view, std::string_view>>;

/// Innermost binding of `prefix` in `decls`; nullopt when it declares none.
inline std::optional<std::string_view> innermost(const ns_decls& decls, std::string_view prefix) noexcept {
    for (auto it = decls.rbegin(); it != decls.rend(); ++it)
        if (it->first == prefix) return it->second;
    return std::nullopt;
}

/// Prefixes whose binding `root`'s subtree takes from outside itself: element
/// and attribute prefixes not declared on the way down, and "" when an
/// unprefixed element inherits the default namespace from outside.
inline void inherited_prefixes(pugi::xml_node n, std::vector<std::string_view>& out,
                               std::vector<std::string_view>& declared) {
    const auto mark = declared.size();
    for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
        const std::string_view an = sv(a.name());
        if (an == "xmlns") declared.push_back({});
        else if (an.starts_with("xmlns:")) declared.push_back(an.substr(6));
    }
    auto add = [&](std::string_view p) {
        if (p == "xml" || p == "xmlns") return;
        for (auto d : declared)
            if (d == p) return;
        for (auto q : out)
            if (q == p) return;
        out.push_back(p);
    };
    add(prefix_of(sv(n.name())));
    for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
        auto p = prefix_of(sv(a.name()));
        if (!p.empty()) add(p); // unprefixed attributes are in no namespace
    }
    for (auto c = n.first_child(); c; c = c.next_sibling())
        if (c.type() == pugi::node_element) inherited_prefixes(c, out, declared);
    declared.resize(mark);
}

inline std::vector<std::string_view> inherited_prefixes(pugi::xml_node root) {
    std::vector<std::string_view> out, declared;
    inherited_prefixes(root, out, declared);
    return out;
}

} // namespace xmpp::xml::detail
