// Sans-io client steps of STARTTLS, SASL and resource binding.
#include "negotiation/machines.hpp"

#include "detail/base64.hpp"
#include "sasl/detail.hpp" // make_error_with_text, printable

#include <xmpp/error.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/xml/writer.hpp>

#include <algorithm>

namespace xmpp::detail {

namespace {

bool is(xml::node e, std::string_view local, std::string_view ns) { return e && e.name() == local && e.ns() == ns; }

std::string describe(xml::node e) {
    if (!e) return "nothing";
    std::string s = "<";
    s += e.name();
    s += " xmlns='";
    s += e.ns();
    s += "'>";
    return s;
}

step unexpected(xml::node e, std::string_view during) {
    return step::failure(make_error_code(errc::unexpected_element),
                         "unexpected " + describe(e) + " during " + std::string(during));
}

// SASL payloads: empty text or "=" both mean zero-length data (RFC 6120
// 6.4.2, 6.3.10); anything else must be canonical base64.
std::optional<std::string> sasl_payload(xml::node e) {
    auto t = e.text();
    if (t.empty() || t == "=") return std::string{};
    return base64_decode(t);
}

std::string sasl_element(std::string_view name, std::string_view data_b64, std::string_view mech = {}) {
    std::string s = "<";
    s += name;
    s += " xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";
    if (!mech.empty()) {
        s += " mechanism='";
        s += mech; // from our own list of known names: [A-Z0-9-_]
        s += '\'';
    }
    if (data_b64.empty()) return s + "/>";
    s += '>';
    s += data_b64;
    s += "</";
    s += name;
    s += '>';
    return s;
}

const std::string abort_element = "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

} // namespace

// --- STARTTLS (RFC 6120 5.4.2.1 - 5.4.2.3) --------------------------------

step starttls_machine::start() { return step::receive("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); }

step starttls_machine::on_element(xml::node e) {
    if (is(e, "proceed", tls_ns)) return {step::next_t::upgrade_tls, {}, {}, {}};
    if (is(e, "failure", tls_ns))
        // 5.4.2.2: the server closes the stream and the TCP connection next.
        return step::failure(make_error_code(errc::starttls_failed), "the server answered <failure/>");
    return unexpected(e, "STARTTLS");
}

// --- SASL (RFC 6120 6.4) ---------------------------------------------------

step sasl_machine::start() {
    boost::system::error_code ec;
    auto initial = mech_->initial_response(ec);
    if (ec) return step::failure(ec, "SASL " + std::string(mech_->name()) + ": cannot start");
    // 6.4.2: no initial response -> no text; zero-length -> "=".
    std::string payload;
    if (initial) payload = initial->empty() ? std::string("=") : base64_encode(*initial);
    return step::receive(sasl_element("auth", payload, mech_->name()));
}

step sasl_machine::on_element(xml::node e) {
    if (is(e, "challenge", sasl_ns)) {
        if (done_) return step::failure(make_error_code(sasl::errc::bad_server_message),
                                        "challenge after the exchange finished", abort_element);
        auto data = sasl_payload(e);
        if (!data)
            // 6.4.5: we abort; the server answers <failure><aborted/></failure>.
            return step::failure(make_error_code(sasl::errc::bad_server_message),
                                 "challenge is not valid base64", abort_element);
        boost::system::error_code ec;
        auto response = mech_->respond(*data, ec);
        if (ec) return step::failure(ec, "SASL " + std::string(mech_->name()) + ": bad challenge", abort_element);
        return step::receive(sasl_element("response", response.empty() ? std::string{} : base64_encode(response)));
    }
    if (is(e, "success", sasl_ns)) {
        auto data = sasl_payload(e);
        if (!data)
            return step::failure(make_error_code(sasl::errc::bad_server_message),
                                 "additional data with success is not valid base64");
        boost::system::error_code ec;
        mech_->finish(*data, ec);
        // A server that cannot prove it knows the password (SCRAM v=) is not
        // trusted even though it says success (RFC 5802 5).
        if (ec) return step::failure(ec, "SASL " + std::string(mech_->name()) + ": server not verified");
        done_ = true;
        return step::finished();
    }
    if (is(e, "failure", sasl_ns)) {
        // 6.5: one defined condition, optional <text/>.
        std::string text;
        sasl::errc cond = sasl::errc::not_authorized;
        bool known = false;
        for (auto c : xml::children(e)) {
            if (c.ns() != sasl_ns) continue;
            if (c.name() == "text") {
                text = c.text();
            } else if (!known) {
                cond = sasl::from_condition(c.name());
                known = true;
            }
        }
        if (text.empty()) return step::failure(make_error_code(cond), "authentication failed");
        // The server's words travel in the error_code (ec.message()), which
        // still compares equal to `cond`; sanitised, as they may end up in a
        // log or a UI (and each distinct text is interned for good).
        const std::string said = sasl::detail::printable(text);
        auto ec = sasl::detail::make_error_with_text(cond, make_error_code(cond).message() + ": " + said);
        return step::failure(ec, said);
    }
    return unexpected(e, "SASL");
}

// --- Resource binding (RFC 6120 7.6 - 7.7) -------------------------------------

step bind_machine::start() {
    // xmlns declared: on a WebSocket each message carries its namespaces
    // (RFC 7395 3.3.1); on TCP it repeats the stream's default.
    std::string s = "<iq xmlns='jabber:client' type='set' id='";
    s += id_; // new_id(): [A-Za-z0-9_-]
    s += "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'";
    if (resource_.empty()) return step::receive(s + "/></iq>");
    s += "><resource>";
    if (auto ec = xml::escape_text(resource_, s))
        return step::failure(make_error_code(errc::invalid_argument), "resource is not valid XML text");
    s += "</resource></bind></iq>";
    return step::receive(std::move(s));
}

step bind_machine::on_element(xml::node e) {
    if (!e || e.name() != "iq" || e.ns() != xml::ns::client || e.attr("id") != id_) return unexpected(e, "resource binding");
    iq_view iq(e);
    auto type = iq.type();
    if (type == iq_type::result) {
        auto j = e.child("bind", bind_ns).child("jid", bind_ns);
        boost::system::error_code ec;
        auto text = j ? j.text() : std::string{};
        auto bound = jid::parse(text, ec);
        // 7.6.1: the result carries the full JID.
        if (ec || !bound.is_full())
            return step::failure(make_error_code(errc::bind_failed), "the server bound an invalid JID '" + text + "'");
        bound_ = std::move(bound);
        return step::finished();
    }
    if (type == iq_type::error) {
        auto err = stanza_error::from_stanza(e);
        std::string text = "resource binding refused";
        if (err && !err->text.empty()) text += ": " + err->text;
        return step::failure(err ? err->code() : make_error_code(errc::bind_failed), text);
    }
    return unexpected(e, "resource binding");
}

// --- Parsing and choosing ------------------------------------------------------

sasl_offer parse_sasl_offer(xml::node mechanisms, xml::node features) {
    sasl_offer o;
    for (auto c : xml::children(mechanisms))
        if (c.name() == "mechanism" && c.ns() == sasl_ns) o.mechanisms.push_back(c.text());
    // XEP-0440 3: <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='...'/>
    if (auto cb = features.child("sasl-channel-binding", cb_ns))
        for (auto c : xml::children(cb))
            if (c.name() == "channel-binding" && c.ns() == cb_ns)
                if (auto t = c.attr("type"); !t.empty()) o.binding_types.emplace_back(t);
    return o;
}

boost::system::error_code check_stream_header(const xml::stream_header& h, std::string_view content_ns,
                                              std::string& text) {
    // 4.7.5: a missing version means 0.9, which has no stream features.
    auto dot = h.version.find('.');
    int major = 0;
    if (dot != std::string::npos && dot > 0) {
        for (std::size_t i = 0; i < dot; ++i) {
            char c = h.version[i];
            if (c < '0' || c > '9' || major > 1000) { major = 0; break; }
            major = major * 10 + (c - '0');
        }
    }
    if (major < 1) {
        text = "the peer's stream version is '" + h.version + "', 1.0 is required";
        return make_error_code(stream_errc::unsupported_version);
    }
    if (h.default_ns != content_ns) {
        text = "the peer's content namespace is '" + h.default_ns + "', expected '" + std::string(content_ns) + "'";
        return make_error_code(stream_errc::invalid_namespace);
    }
    return {};
}

std::vector<offered_feature> match_features(xml::node features,
                                            const std::vector<std::shared_ptr<const stream_feature>>& ours) {
    std::vector<offered_feature> out;
    auto claimed = [&out](xml::node c) {
        return std::any_of(out.begin(), out.end(), [&](const offered_feature& o) { return o.advertisement == c; });
    };
    for (const auto& f : ours) {
        for (auto child : xml::children(features)) {
            // One advertisement per feature (a repeated one counts once), one
            // feature per advertisement (the first of ours that knows it).
            if (child.name() != f->name() || child.ns() != f->ns() || claimed(child)) continue;
            out.push_back({f.get(), child});
            break;
        }
    }
    return out;
}

const offered_feature* choose_feature(const std::vector<offered_feature>& offered, session_state state) {
    // 4.3.2 leaves the order to the initiating entity. Ours is fixed (TLS,
    // then SASL, then bind): a server listing <mechanisms/> first, or not
    // marking <starttls/> <required/>, must not talk us out of TLS.
    for (const auto& o : offered)
        if (has_all(state, o.feature->necessary()) && !has_any(state, o.feature->prohibited())) return &o;
    return nullptr;
}

} // namespace xmpp::detail
