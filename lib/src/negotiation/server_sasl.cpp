// The receiving SASL stream feature (RFC 6120 6.4): advertises what
// sasl::server_options can serve on the stream's state, answers <auth/>,
// drives the sans-io server mechanisms of lib/src/sasl/server.hpp over
// <challenge/>/<response/>, awaits the application's lookups, and records
// the authenticated account.
#include <xmpp/negotiator.hpp>

#include "detail/base64.hpp"
#include "negotiation/machines.hpp" // sasl_ns, cb_ns
#include "sasl/detail.hpp"
#include "sasl/server.hpp"

#include <xmpp/error.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <exception>

namespace xmpp {

namespace {

namespace sd = sasl::detail;
using boost::system::system_error;

// What this stream gets offered (list()) and accepts (negotiate()): the
// same computation on the same state, so the client can only pick what it
// was shown.
struct sasl_offer {
    std::vector<std::string> mechanisms;
    std::vector<std::string> binding_types; // XEP-0440, usable on this stream, best first
    bool secure = false;
    bool plus_offered = false;
};

// One attempt's end.
struct outcome {
    bool ok = false;
    sasl::errc condition = sasl::errc::not_authorized;
    std::string text;
};

outcome failed(sasl::errc c, std::string text = {}) { return {false, c, std::move(text)}; }

std::string xml_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '\'': out += "&apos;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

// <name xmlns='...sasl'>base64</name>; zero-length data as "=" (RFC 6120
// 6.4.3), no data at all as an empty element.
std::string sasl_element(std::string_view name, const std::optional<std::string>& data) {
    std::string s = "<";
    s += name;
    s += " xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";
    if (!data) return s + "/>";
    s += '>';
    if (data->empty()) s += '=';
    else s += xmpp::detail::base64_encode(*data);
    s += "</";
    s += name;
    s += '>';
    return s;
}

// RFC 6120 6.4.5: <failure/> with the condition and, when there is one, a
// short <text/>.
std::string failure_element(sasl::errc c, std::string_view text) {
    std::string s = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><";
    s += sasl::condition_name(c);
    s += "/>";
    if (!text.empty()) {
        s += "<text xml:lang='en'>";
        s += xml_escape(text);
        s += "</text>";
    }
    s += "</failure>";
    return s;
}

// Decodes SASL data of an <auth/> or <response/> (RFC 6120 6.4.2): empty
// text is no data (nullopt), "=" is zero-length data; anything else must
// be canonical base64 of at most `max` bytes.
struct payload {
    std::optional<std::string> data;
    std::optional<outcome> error;
};

payload decode_payload(xml::node e, std::size_t max) {
    const std::string text = e.text();
    if (text.empty()) return {};
    if (text == "=") return {std::string(), std::nullopt};
    // Four characters per three bytes: refuse what cannot fit before decoding.
    if (text.size() / 4 > max / 3 + 1) return {std::nullopt, failed(sasl::errc::malformed_request, "message too long")};
    auto d = xmpp::detail::base64_decode(text);
    if (!d) return {std::nullopt, failed(sasl::errc::incorrect_encoding)};
    if (d->size() > max) return {std::nullopt, failed(sasl::errc::malformed_request, "message too long")};
    return {std::move(*d), std::nullopt};
}

class sasl_server final : public stream_feature {
public:
    sasl_server(sasl::server_options o, bool require_tls) : opts_(std::move(o)), require_tls_(require_tls) {
        // The hashes offered, known names only, each once, in the given order.
        for (const auto& h : opts_.scram_hashes) {
            auto known = sd::scram_hash_of(h);
            if (!known) continue;
            const std::string name(sd::hash_name(*known));
            if (std::find(hashes_.begin(), hashes_.end(), name) == hashes_.end()) hashes_.push_back(name);
        }
    }

    std::string_view name() const noexcept override { return "mechanisms"; }
    std::string_view ns() const noexcept override { return detail::sasl_ns; }
    session_state necessary() const noexcept override {
        return require_tls_ ? session_state::secure : session_state::none;
    }
    session_state prohibited() const noexcept override { return session_state::authenticated; }

    asio::awaitable<parse_result> parse(xml::node) const override {
        throw system_error(make_error_code(errc::invalid_argument),
                           "sasl_server_feature is a receiving-side feature");
    }

    asio::awaitable<bool> list(xml::node features, const negotiation_stream& s) const override {
        // current_transport() is not const; the calls made on it are.
        const sasl_offer o = offer(const_cast<negotiation_stream&>(s).current_transport());
        if (o.mechanisms.empty()) co_return false;
        auto m = features.append("mechanisms", detail::sasl_ns);
        for (const auto& name : o.mechanisms) m.append("mechanism").set_text(name);
        if (o.plus_offered) {
            // XEP-0440 2: a sibling of <mechanisms/> in <stream:features/>.
            auto cb = features.append("sasl-channel-binding", detail::cb_ns);
            for (const auto& t : o.binding_types) cb.append("channel-binding").set_attr("type", t);
        }
        co_return true; // RFC 6120 6.4.1: mandatory-to-negotiate
    }

    bool starts_with(xml::node e) const noexcept override { return e.is("auth", detail::sasl_ns); }

    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any& data) const override {
        auto* first = std::any_cast<xml::element>(&data);
        if (!first || !first->root().is("auth", detail::sasl_ns))
            throw system_error(make_error_code(errc::invalid_argument), "SASL: negotiate() needs the <auth/> element");
        xml::element auth = std::move(*first);
        const unsigned max_attempts = std::max(1u, opts_.max_attempts);
        for (unsigned attempt = 1;; ++attempt) {
            outcome r = co_await run(s, auth.root());
            if (r.ok) {
                negotiate_result nr;
                nr.gained = session_state::authenticated;
                nr.restart = true; // RFC 6120 6.4.6
                co_return nr;
            }
            const std::string failure = failure_element(r.condition, r.text);
            co_await s.send_raw(failure);
            if (attempt >= max_attempts) {
                std::string what = "SASL: " + std::to_string(attempt) + " failed attempt(s), the last " +
                                   std::string(sasl::condition_name(r.condition));
                if (!r.text.empty()) what += " (" + r.text + ")";
                throw system_error(make_error_code(r.condition), what);
            }
            // RFC 6120 6.4.5: the client may try again with a new <auth/>.
            auth = co_await s.receive();
            if (!auth.root().is("auth", detail::sasl_ns)) {
                const std::string what = "SASL: expected <auth/> after <failure/>, got <" +
                                         std::string(auth.root().qname()) + ">";
                throw system_error(make_error_code(errc::unexpected_element), what);
            }
        }
    }

private:
    sasl_offer offer(const transport& t) const {
        sasl_offer o;
        o.secure = t.is_secure();
        if (require_tls_ && !o.secure) return o; // RFC 6120 5.3.1: nothing before TLS
        if (o.secure) {
            // XEP-0440 types with data here, best first; tls-unique is
            // undefined for TLS 1.3 (RFC 9266 3).
            for (std::string_view type : {"tls-exporter", "tls-server-end-point", "tls-unique"}) {
                if (type == "tls-unique" && t.tls_version() >= 0x0304) continue;
                if (!t.channel_binding(type).empty()) o.binding_types.emplace_back(type);
            }
        }
        if (opts_.scram_lookup) {
            if (!o.binding_types.empty())
                for (const auto& h : hashes_) o.mechanisms.push_back("SCRAM-" + h + "-PLUS");
            o.plus_offered = !o.binding_types.empty() && !hashes_.empty();
            for (const auto& h : hashes_) o.mechanisms.push_back("SCRAM-" + h);
        }
        // RFC 4616 6: never a password in the clear.
        if (o.secure && plain_configured()) o.mechanisms.emplace_back("PLAIN");
        if (opts_.allow_anonymous) o.mechanisms.emplace_back("ANONYMOUS");
        return o;
    }

    bool plain_configured() const { return static_cast<bool>(opts_.plain_check) || !opts_.sasldb_path.empty(); }

    // One attempt, from <auth/> to the outcome; sends the challenges and the
    // <success/>, not the <failure/>.
    asio::awaitable<outcome> run(negotiation_stream& s, xml::node auth) const {
        transport& t = s.current_transport();
        const sasl_offer o = offer(t);
        const std::string mech_name(auth.attr("mechanism"));
        if (std::find(o.mechanisms.begin(), o.mechanisms.end(), mech_name) == o.mechanisms.end()) {
            // 6.5.4: what TLS would allow is "encryption-required".
            const bool needs_tls = !o.secure && (require_tls_ || (mech_name == "PLAIN" && plain_configured()));
            if (needs_tls) co_return failed(sasl::errc::encryption_required);
            co_return failed(sasl::errc::invalid_mechanism);
        }
        payload initial = decode_payload(auth, opts_.max_message_bytes);
        if (initial.error) co_return *initial.error;

        std::unique_ptr<sd::server_mechanism> mech;
        if (mech_name == "PLAIN") {
            mech = sd::make_plain_server(opts_.max_message_bytes);
        } else if (mech_name == "ANONYMOUS") {
            mech = sd::make_anonymous_server();
        } else {
            sd::scram_server_config cfg;
            cfg.binding_types = o.binding_types;
            cfg.binding = [&t](std::string_view type) { return t.channel_binding(type); };
            cfg.plus_offered = o.plus_offered;
            cfg.max_message_bytes = opts_.max_message_bytes;
            mech = sd::make_scram_server(mech_name, cfg);
        }
        if (!mech) co_return failed(sasl::errc::invalid_mechanism);

        std::optional<std::string_view> first;
        if (initial.data) first = *initial.data;
        sd::server_step st = mech->start(first);
        for (;;) {
            switch (st.next) {
            case sd::server_step::action::challenge: {
                const std::optional<std::string> challenge_data = std::move(st.data);
                const std::string challenge = sasl_element("challenge", challenge_data);
                co_await s.send_raw(challenge);
                xml::element reply = co_await s.receive();
                const xml::node r = reply.root();
                // 6.4.4: the client aborts.
                if (r.is("abort", detail::sasl_ns)) co_return failed(sasl::errc::aborted);
                if (!r.is("response", detail::sasl_ns)) {
                    const std::string what =
                        "SASL: expected <response/> or <abort/>, got <" + std::string(r.qname()) + ">";
                    throw system_error(make_error_code(errc::unexpected_element), what);
                }
                payload p = decode_payload(r, opts_.max_message_bytes);
                if (p.error) co_return *p.error;
                const std::string response = p.data ? std::move(*p.data) : std::string();
                st = mech->respond(response);
                break;
            }
            case sd::server_step::action::lookup: {
                std::optional<sasl::scram_secret> secret;
                bool lookup_failed = false;
                std::string user = mech->identity().username;
                std::string hash = std::move(st.data);
                try {
                    secret = co_await opts_.scram_lookup(std::move(user), std::move(hash));
                } catch (const std::exception&) {
                    lookup_failed = true; // the account store failed, not the client
                }
                if (lookup_failed) co_return failed(sasl::errc::temporary_auth_failure);
                st = mech->found(std::move(secret));
                break;
            }
            case sd::server_step::action::check_password: {
                bool ok = false;
                bool check_failed = false;
                std::string password = std::move(st.data);
                if (opts_.plain_check) {
                    std::string user = mech->identity().username;
                    std::string authzid = mech->identity().authzid;
                    std::string pass_copy = password;
                    try {
                        ok = co_await opts_.plain_check(std::move(user), std::move(pass_copy), std::move(authzid));
                    } catch (const std::exception&) {
                        check_failed = true;
                    }
                    sd::cleanse(pass_copy.data(), pass_copy.size());
                } else {
                    // Blocking, but a local Berkeley DB read (server.hpp).
                    boost::system::error_code ec;
                    const std::string domain(s.local_address().domainpart());
                    ok = sd::cyrus_checkpass(opts_.sasldb_path, domain, mech->identity().username, password, ec);
                    check_failed = static_cast<bool>(ec);
                }
                sd::cleanse(password.data(), password.size());
                if (check_failed) co_return failed(sasl::errc::temporary_auth_failure);
                st = mech->checked(ok);
                break;
            }
            case sd::server_step::action::success: {
                jid peer;
                if (auto why = authorize(s, *mech, peer)) co_return *why;
                const std::optional<std::string> success_data = std::move(st.data);
                std::optional<std::string> additional;
                if (success_data && !success_data->empty()) additional = success_data;
                const std::string success = sasl_element("success", additional);
                co_await s.send_raw(success);
                s.set_peer_address(std::move(peer));
                s.set_auth_mechanism(std::string(mech->name()));
                co_return outcome{true, {}, {}};
            }
            case sd::server_step::action::failure:
                co_return failed(st.condition, std::move(st.text));
            }
        }
    }

    // The account the exchange authenticated and the identity it may act
    // as (RFC 6120 6.3.8); the failure when the authzid is not allowed.
    std::optional<outcome> authorize(const negotiation_stream& s, const sd::server_mechanism& mech, jid& peer) const {
        const std::string domain(s.local_address().domainpart());
        const sasl::server_identity& who = mech.identity();
        boost::system::error_code ec;
        if (mech.name() == "ANONYMOUS") {
            // RFC 4505: no account; the session gets a fresh name.
            const std::string local = sd::random_localpart();
            peer = jid::from_parts(local, domain, {}, ec);
            if (ec || local.empty()) return failed(sasl::errc::temporary_auth_failure);
            return std::nullopt;
        }
        const jid account = jid::from_parts(who.username, domain, {}, ec);
        if (ec) return failed(sasl::errc::not_authorized);
        peer = account;
        if (who.authzid.empty()) return std::nullopt;
        // 6.3.8: the authzid is a bare JID <localpart@domainpart>.
        const jid wanted = jid::parse(who.authzid, ec);
        if (ec || !wanted.is_bare() || wanted.localpart().empty()) return failed(sasl::errc::invalid_authzid);
        const bool allowed = opts_.authorize ? opts_.authorize(who, domain) : wanted == account;
        if (!allowed) return failed(sasl::errc::invalid_authzid);
        peer = wanted;
        return std::nullopt;
    }

    sasl::server_options opts_;
    bool require_tls_;
    std::vector<std::string> hashes_; // "SHA-512"..., from opts_.scram_hashes
};

} // namespace

std::shared_ptr<const stream_feature> sasl_server_feature(sasl::server_options opts, bool require_tls) {
    return std::make_shared<sasl_server>(std::move(opts), require_tls);
}

} // namespace xmpp
