// XEP-0156 host-meta documents: XRD with pugixml, JRD with Boost.JSON.
//
// Boost.JSON is used header-only: its whole implementation (boost/json/src.hpp)
// is compiled into this one translation unit of the library and nowhere else.
#include "detail.hpp"

#include <boost/json/src.hpp>

#include <pugixml.hpp>

#include <cstring>

namespace xmpp::ws::detail {

namespace {

constexpr std::string_view xrd_ns = "http://docs.oasis-open.org/ns/xri/xrd-1.0";

std::string_view prefix_of(const char* qname) {
    const std::string_view q(qname);
    const auto colon = q.find(':');
    return colon == std::string_view::npos ? std::string_view() : q.substr(0, colon);
}

std::string_view local_of(const char* qname) {
    const std::string_view q(qname);
    const auto colon = q.find(':');
    return colon == std::string_view::npos ? q : q.substr(colon + 1);
}

// The namespace an element's prefix is bound to, from its own declarations
// or its ancestors' ("" when unbound).
std::string_view namespace_of(pugi::xml_node n) {
    const std::string_view prefix = prefix_of(n.name());
    const std::string attr = prefix.empty() ? std::string("xmlns") : "xmlns:" + std::string(prefix);
    for (; n && n.type() == pugi::node_element; n = n.parent())
        if (auto a = n.attribute(attr.c_str())) return a.value();
    return {};
}

} // namespace

host_meta_links parse_xrd(std::string_view body) {
    host_meta_links out;
    pugi::xml_document doc;
    // No parse_doctype: a DOCTYPE is skipped, never interpreted.
    const auto r = doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!r) {
        out.error = std::string("not well-formed XML: ") + r.description() + " at offset " +
                    std::to_string(r.offset);
        return out;
    }
    const pugi::xml_node root = doc.document_element();
    if (!root || local_of(root.name()) != "XRD" || namespace_of(root) != xrd_ns) {
        out.error = "the root element is not an XRD (" + std::string(xrd_ns) + ")";
        return out;
    }
    out.parsed = true;
    for (pugi::xml_node link : root.children()) {
        if (link.type() != pugi::node_element || local_of(link.name()) != "Link" || namespace_of(link) != xrd_ns)
            continue;
        if (std::string_view(link.attribute("rel").value()) != websocket_rel) continue;
        if (auto href = link.attribute("href")) out.hrefs.emplace_back(href.value());
    }
    return out;
}

host_meta_links parse_jrd(std::string_view body) {
    host_meta_links out;
    boost::system::error_code ec;
    boost::json::parse_options po; // strict JSON, max_depth 32
    const boost::json::value v = boost::json::parse(boost::json::string_view(body.data(), body.size()), ec, {}, po);
    if (ec) {
        out.error = "not valid JSON: " + ec.message();
        return out;
    }
    const auto* top = v.if_object();
    if (!top) {
        out.error = "the document is not a JSON object";
        return out;
    }
    out.parsed = true;
    const auto it = top->find("links");
    if (it == top->end()) return out;
    const auto* links = it->value().if_array();
    if (!links) return out;
    for (const auto& l : *links) {
        const auto* o = l.if_object();
        if (!o) continue;
        const auto rel = o->find("rel");
        const auto href = o->find("href");
        if (rel == o->end() || href == o->end()) continue;
        const auto* rs = rel->value().if_string();
        const auto* hs = href->value().if_string();
        if (!rs || !hs || std::string_view(rs->data(), rs->size()) != websocket_rel) continue;
        out.hrefs.emplace_back(hs->data(), hs->size());
    }
    return out;
}

} // namespace xmpp::ws::detail
