// Seeded generator of realistic XMPP client streams (demo and benchmarks).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace bench {

class corpus_gen {
public:
    explicit corpus_gen(std::uint64_t seed) : rng_(seed) {}

    static std::string_view header() {
        return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams' from='capulet.example' "
               "id='++TR84Sm6A3hnt3Q065SnAbbk3Y=' to='juliet@capulet.example' version='1.0' xml:lang='en'>";
    }
    static std::string_view trailer() { return "</stream:stream>"; }

    /// ~300-byte one-to-one chat messages: chat states, receipts, origin ids,
    /// entities and non-ASCII text.
    void chat_message(std::string& out) {
        const bool body = pick(10) < 8;
        out += "<message from='";
        out += jid(true);
        out += "' to='juliet@capulet.example/balcony' type='chat' id='";
        id(out, 12);
        out += "'>";
        if (body) {
            out += "<body>";
            text(out, 8 + pick(50));
            out += "</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
                   "<request xmlns='urn:xmpp:receipts'/>";
        } else if (pick(2)) {
            out += "<composing xmlns='http://jabber.org/protocol/chatstates'/>";
        } else {
            out += "<received xmlns='urn:xmpp:receipts' id='";
            id(out, 12);
            out += "'/><markable xmlns='urn:xmpp:chat-markers:0'/>";
        }
        out += "<origin-id xmlns='urn:xmpp:sid:0' id='";
        uuid(out);
        out += "'/></message>";
    }

    /// One element of a realistic mix: presence with caps, MUC messages, MAM
    /// results, roster results, disco#info results, pubsub events, chat.
    void mixed(std::string& out) {
        switch (pick(20)) {
        case 0: case 1: case 2: case 3: case 4: presence(out); break;
        case 5: case 6: case 7: muc_message(out); break;
        case 8: case 9: case 10: mam_result(out); break;
        case 11: roster_result(out); break;
        case 12: disco_info(out); break;
        case 13: case 14: pubsub_event(out); break;
        default: chat_message(out); break;
        }
        if (pick(10) == 0) out += "\n "; // white-space keepalive
    }

private:
    std::uint32_t pick(std::uint32_t n) { return static_cast<std::uint32_t>(rng_() % n); }

    std::string jid(bool full) {
        static const char* users[] = {"romeo", "mercutio", "benvolio", "nurse", "tybalt", "paris"};
        static const char* domains[] = {"montague.example", "verona.example", "capulet.example"};
        std::string j = users[pick(6)];
        j += '@';
        j += domains[pick(3)];
        if (full) {
            j += "/";
            id(j, 8);
        }
        return j;
    }

    void id(std::string& out, int n) {
        static const char a[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        for (int i = 0; i < n; ++i) out += a[pick(62)];
    }

    void uuid(std::string& out) {
        static const char h[] = "0123456789abcdef";
        for (int i = 0; i < 36; ++i) out += (i == 8 || i == 13 || i == 18 || i == 23) ? '-' : h[pick(16)];
    }

    void text(std::string& out, std::uint32_t n, bool attr = false) {
        static const char* words[] = {"but", "soft", "what", "light", "through", "yonder", "window",
                                      "breaks", "it", "is", "the", "east", "and", "Juliet", "sun",
                                      "&amp;", "&lt;3", "caf\xc3\xa9", "\xc3\xbc" "ber", "\xe6\x97\xa5\xe6\x9c\xac",
                                      "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "\xf0\x9f\x98\x80",
                                      "&quot;hi&quot;", "a>b", "O'Neil"};
        const auto start = out.size();
        const std::uint32_t nwords = sizeof words / sizeof *words - (attr ? 2 : 0); // no ' in attributes
        while (out.size() - start < n) {
            out += words[pick(nwords)];
            out += ' ';
        }
    }

    void presence(std::string& out) {
        out += "<presence from='";
        out += jid(true);
        out += "' to='juliet@capulet.example/balcony'>";
        static const char* shows[] = {"", "<show>away</show>", "<show>dnd</show>", "<show>xa</show>"};
        out += shows[pick(4)];
        out += "<status>";
        text(out, 10 + pick(30));
        out += "</status><priority>";
        out += std::to_string(pick(10));
        out += "</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
               "node='https://conversations.im' ver='";
        id(out, 27);
        out += "='/><x xmlns='vcard-temp:x:update'><photo>";
        id(out, 40);
        out += "</photo></x></presence>";
    }

    void muc_message(std::string& out) {
        out += "<message from='coven@chat.shakespeare.example/";
        out += jid(false).substr(0, 5);
        out += "' to='juliet@capulet.example/balcony' type='groupchat' id='";
        id(out, 16);
        out += "'><body>";
        text(out, 20 + pick(150));
        out += "</body><stanza-id xmlns='urn:xmpp:sid:0' by='coven@chat.shakespeare.example' id='";
        uuid(out);
        out += "'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='";
        id(out, 44);
        out += "'/></message>";
    }

    void mam_result(std::string& out) {
        out += "<message to='juliet@capulet.example/balcony' id='";
        id(out, 10);
        out += "'><result xmlns='urn:xmpp:mam:2' queryid='f27' id='";
        uuid(out);
        out += "'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' "
               "stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from='";
        out += jid(true);
        out += "' to='juliet@capulet.example/balcony' type='chat'><body>";
        text(out, 30 + pick(120));
        out += "</body></message></forwarded></result></message>";
    }

    void roster_result(std::string& out) {
        out += "<iq to='juliet@capulet.example/balcony' type='result' id='";
        id(out, 8);
        out += "'><query xmlns='jabber:iq:roster' ver='ver";
        out += std::to_string(pick(1000));
        out += "'>";
        const auto n = 20 + pick(80);
        for (std::uint32_t i = 0; i < n; ++i) {
            out += "<item jid='";
            out += jid(false);
            out += "' name='";
            text(out, 5, true);
            out += "' subscription='both'><group>";
            out += pick(2) ? "Friends" : "Verona";
            out += "</group></item>";
        }
        out += "</query></iq>";
    }

    void disco_info(std::string& out) {
        out += "<iq from='capulet.example' to='juliet@capulet.example/balcony' type='result' id='";
        id(out, 8);
        out += "'><query xmlns='http://jabber.org/protocol/disco#info'>"
               "<identity category='server' type='im' name='Prosody'/>";
        static const char* features[] = {"urn:xmpp:ping", "urn:xmpp:mam:2", "urn:xmpp:carbons:2",
                                         "jabber:iq:roster", "jabber:iq:version", "urn:xmpp:blocking",
                                         "http://jabber.org/protocol/disco#items", "vcard-temp",
                                         "urn:xmpp:time", "msgoffline", "jabber:iq:private",
                                         "http://jabber.org/protocol/commands", "urn:xmpp:sm:3"};
        for (auto f : features) {
            out += "<feature var='";
            out += f;
            out += "'/>";
        }
        out += "</query></iq>";
    }

    void pubsub_event(std::string& out) {
        out += "<message from='romeo@montague.example' to='juliet@capulet.example' type='headline' id='";
        id(out, 10);
        out += "'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:microblog:0'>"
               "<item id='";
        uuid(out);
        out += "' publisher='romeo@montague.example'><entry xmlns='http://www.w3.org/2005/Atom'><title type='text'>";
        text(out, 8 + pick(50));
        out += "</title><published>2024-05-01T10:00:00Z</published><author><name>Romeo</name>"
               "<uri>xmpp:romeo@montague.example</uri></author></entry></item></items></event></message>";
    }

    std::mt19937_64 rng_;
};

} // namespace bench
