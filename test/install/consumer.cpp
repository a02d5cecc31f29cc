// A downstream program built only with `pkg-config --cflags --libs asio-xmpp`
// against an installed copy: proves the generated .pc file and the install.
#include <xmpp/jid.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <openssl/base.h>

#include <cstdio>

int main() {
#if defined(XMPP_TLS_BORINGSSL) && !defined(OPENSSL_IS_BORINGSSL)
    std::puts("built for BoringSSL but <openssl/base.h> is not BoringSSL's");
    return 1;
#endif
    xmpp::xml::reader r;
    r.feed("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
           "<message from='Juliet@Capulet.example/balcony'><body>hi</body></message>");
    boost::system::error_code ec;
    if (r.next(ec) != xmpp::xml::frame_event::stream_open) return 2;
    if (r.next(ec) != xmpp::xml::frame_event::element) return 3;
    if (xmpp::classify(r.element()) != xmpp::stanza_kind::message) return 4;
    auto j = xmpp::jid::parse(r.element().attr("from"), ec);
    if (ec || j.bare().str() != "juliet@capulet.example") return 5;
    std::puts(xmpp::xml::to_string(r.element()).c_str());
    return 0;
}
