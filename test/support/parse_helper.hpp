// Parse an element from text in tests (with every reader check), keeping the
// owning element alive beside its root handle.
#pragma once

#include "test_catch.hpp"

#include <xmpp/xml/reader.hpp>

#include <string>
#include <utility>

namespace xmpp::test {

struct parsed {
    xml::element el;
    xml::node root;
};

/// `context`: the namespaces a stream header would declare around the element.
inline parsed parse(const std::string& text, const xml::stream_header& context = {}) {
    boost::system::error_code ec;
    auto el = xml::parse_element(text, ec, context);
    INFO(text);
    REQUIRE_FALSE(ec);
    auto root = el.root();
    return {std::move(el), root};
}

/// The namespace context of a jabber:client stream header.
inline xml::stream_header client_context() {
    xml::stream_header h;
    h.default_ns = std::string(xml::ns::client);
    h.prefixes.emplace_back("stream", std::string(xml::ns::stream));
    return h;
}

} // namespace xmpp::test
