// The default client negotiator (RFC 6120 4.3) and the awaitable STARTTLS,
// SASL and bind features, which drive the sans-io machines of machines.hpp.
#include <xmpp/negotiator.hpp>

#include "negotiation/machines.hpp"

#include <xmpp/error.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stream_error.hpp>

#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace xmpp {

namespace {

using detail::step;

[[noreturn]] void fail(boost::system::error_code ec, const std::string& text) {
    throw boost::system::system_error(ec, text);
}

// Runs a machine until it is done, failed or wants TLS; returns the last step.
template <class Machine>
asio::awaitable<step> drive(negotiation_stream& s, Machine& m, step st) {
    for (;;) {
        if (!st.out.empty()) co_await s.send_raw(st.out);
        switch (st.next) {
        case step::next_t::receive: {
            auto e = co_await s.receive();
            st = m.on_element(e.root());
            break;
        }
        case step::next_t::fail:
            fail(st.ec, st.text);
        case step::next_t::upgrade_tls:
        case step::next_t::done:
            co_return st;
        }
    }
}

// --- STARTTLS -----------------------------------------------------------------

class starttls final : public stream_feature {
public:
    explicit starttls(tls::context ctx) : ctx_(std::move(ctx)) {}
    std::string_view name() const noexcept override { return "starttls"; }
    std::string_view ns() const noexcept override { return detail::tls_ns; }
    session_state prohibited() const noexcept override { return session_state::secure; }

    asio::awaitable<parse_result> parse(xml::node advertised) const override {
        // RFC 6120 5.4.1: <required/> marks it mandatory-to-negotiate.
        co_return parse_result{static_cast<bool>(advertised.child("required", detail::tls_ns)), {}};
    }

    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any&) const override {
        detail::starttls_machine m;
        co_await drive(s, m, m.start());
        // 5.4.3.3: the TLS handshake starts right after <proceed/>; anything
        // the server sent after it was not protected (take_transport checks).
        auto plain = s.take_transport();
        auto secure = co_await tls::connect(std::move(plain), ctx_, s.peer_domain());
        co_return detail::secured(std::move(secure));
    }

private:
    tls::context ctx_;
};

// --- SASL -----------------------------------------------------------------------

class sasl_auth final : public stream_feature {
public:
    sasl_auth(sasl::credentials c, sasl::options o, bool allow_plaintext)
        : creds_(std::move(c)), opts_(std::move(o)), allow_plaintext_(allow_plaintext) {}
    std::string_view name() const noexcept override { return "mechanisms"; }
    std::string_view ns() const noexcept override { return detail::sasl_ns; }
    session_state necessary() const noexcept override {
        return allow_plaintext_ ? session_state::none : session_state::secure;
    }
    session_state prohibited() const noexcept override { return session_state::authenticated; }

    asio::awaitable<parse_result> parse(xml::node advertised) const override {
        // RFC 6120 6.4.1: SASL is mandatory-to-negotiate. The parent
        // <stream:features/> holds the XEP-0440 advertisement, if any.
        co_return parse_result{true, detail::parse_sasl_offer(advertised, advertised.parent())};
    }

    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any& data) const override {
        const auto* offer = std::any_cast<detail::sasl_offer>(&data);
        if (!offer) fail(make_error_code(errc::invalid_argument), "SASL: no parsed advertisement");
        transport& t = s.current_transport();
        sasl::tls_state ts;
        ts.secure = t.is_secure();
        // PLAIN needs an authenticated peer, which is_secure() does not say
        // (insecure_skip_verify).
        ts.peer_verified = t.peer_verified();
        ts.tls_version = t.tls_version();
        ts.binding = [&t](std::string_view type) { return t.channel_binding(type); };
        ts.server_binding_types = offer->binding_types;
        sasl::credentials creds = creds_;
        if (creds.username.empty()) creds.username = std::string(s.local_address().localpart());
        boost::system::error_code ec;
        auto mech = sasl::select(offer->mechanisms, creds, ts, opts_, s.peer_domain(), ec);
        if (!mech) {
            // Named locals, no ?: temporaries in a coroutine (GCC 12 bug, FIELD-NOTES).
            std::string offered = "no usable SASL mechanism among those offered:";
            for (auto& m : offer->mechanisms) offered += " " + m;
            if (offer->mechanisms.empty()) offered += " (none)";
            if (!ec) ec = make_error_code(sasl::errc::no_acceptable_mechanism);
            fail(ec, offered);
        }
        std::string mech_name(mech->name());
        detail::sasl_machine m(std::move(mech));
        co_await drive(s, m, m.start());
        s.set_auth_mechanism(std::move(mech_name));
        negotiate_result r;
        r.gained = session_state::authenticated;
        r.restart = true; // 6.4.6
        co_return r;
    }

private:
    sasl::credentials creds_;
    sasl::options opts_;
    bool allow_plaintext_;
};

// --- Resource binding ---------------------------------------------------------

class bind final : public stream_feature {
public:
    explicit bind(std::string resource) : resource_(std::move(resource)) {}
    std::string_view name() const noexcept override { return "bind"; }
    std::string_view ns() const noexcept override { return detail::bind_ns; }
    session_state necessary() const noexcept override { return session_state::authenticated; }
    session_state prohibited() const noexcept override { return session_state::ready; }

    asio::awaitable<parse_result> parse(xml::node) const override { co_return parse_result{true, {}}; } // 7.3.1: mandatory

    asio::awaitable<negotiate_result> negotiate(negotiation_stream& s, std::any&) const override {
        std::string resource = resource_;
        if (resource.empty()) resource = std::string(s.local_address().resourcepart());
        detail::bind_machine m(std::move(resource), new_id());
        co_await drive(s, m, m.start());
        s.set_local_address(m.bound());
        negotiate_result r;
        r.gained = session_state::ready;
        co_return r;
    }

private:
    std::string resource_;
};

// --- The negotiator ---------------------------------------------------------------

class client_negotiator final : public negotiator {
public:
    client_negotiator(std::vector<std::shared_ptr<const stream_feature>> features, bool allow_plaintext)
        : features_(std::move(features)), allow_plaintext_(allow_plaintext) {}

    asio::awaitable<void> run(negotiation_io& io) override {
        for (;;) {
            co_await io.open_stream();
            auto header = co_await io.receive_header();
            std::string text;
            if (auto ec = detail::check_stream_header(header, xml::ns::client, text)) fail(ec, text);

            // 4.3.2: <stream:features/> follows the header.
            auto features = co_await io.receive();
            auto root = features.root();
            if (root.name() != "features" || root.ns() != xml::ns::stream)
                fail(make_error_code(errc::unexpected_element),
                     "expected <stream:features/>, got <" + std::string(root.qname()) + ">");

            // In our order (STARTTLS, SASL, bind, extras), not the
            // document's: an offered STARTTLS always goes first, <required/>
            // or not; allow_plaintext only lets us go on when none is offered.
            auto offered = detail::match_features(root, features_);
            std::vector<std::any> data;
            bool starttls_offered = false;
            for (const auto& o : offered) {
                auto parsed = co_await o.feature->parse(o.advertisement);
                data.push_back(std::move(parsed.data));
                if (o.feature->ns() == detail::tls_ns) starttls_offered = true;
            }
            // RFC 7590 3.1 and our default: no TLS, no session.
            if (!has_all(io.state(), session_state::secure) && !starttls_offered && !allow_plaintext_)
                fail(make_error_code(errc::tls_required), "the server does not offer STARTTLS");

            bool restart = false;
            while (!restart) {
                const auto* pick = detail::choose_feature(offered, io.state());
                if (!pick) {
                    if (has_all(io.state(), session_state::ready)) co_return;
                    std::string names = "no usable feature among those offered:";
                    for (auto child : xml::children(root)) names += " <" + std::string(child.name()) + "/>";
                    fail(make_error_code(errc::negotiation_stuck), names);
                }
                const std::size_t i = static_cast<std::size_t>(pick - offered.data());
                auto r = co_await pick->feature->negotiate(io, data[i]);
                io.add_state(r.gained);
                if (r.new_transport) {
                    io.replace_transport(std::move(r.new_transport));
                    restart = true;
                }
                restart = restart || r.restart;
                offered.erase(offered.begin() + static_cast<std::ptrdiff_t>(i));
                data.erase(data.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
    }

private:
    std::vector<std::shared_ptr<const stream_feature>> features_;
    bool allow_plaintext_;
};

} // namespace

std::shared_ptr<const stream_feature> starttls_feature(tls::context ctx) {
    return std::make_shared<starttls>(std::move(ctx));
}

std::shared_ptr<const stream_feature> sasl_feature(sasl::credentials creds, sasl::options opts, bool allow_plaintext) {
    return std::make_shared<sasl_auth>(std::move(creds), std::move(opts), allow_plaintext);
}

std::shared_ptr<const stream_feature> bind_feature(std::string resource) {
    return std::make_shared<bind>(std::move(resource));
}

std::shared_ptr<negotiator> make_client_negotiator(const client_features_config& cfg,
                                                   std::vector<std::shared_ptr<const stream_feature>> extra) {
    std::vector<std::shared_ptr<const stream_feature>> features;
    if (cfg.tls) features.push_back(starttls_feature(*cfg.tls));
    features.push_back(sasl_feature(cfg.credentials, cfg.sasl, cfg.allow_plaintext));
    features.push_back(bind_feature(cfg.resource));
    for (auto& f : extra) features.push_back(std::move(f));
    return std::make_shared<client_negotiator>(std::move(features), cfg.allow_plaintext);
}

} // namespace xmpp
