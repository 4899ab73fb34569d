"""The demo's look at the emails the emulator's SES kept (JSON on stdin, from
/_dormant/ses/sent): `show RECIPIENT` prints the latest one to RECIPIENT as text;
`link RECIPIENT ROLE ACTION` prints its signed ACTION link (keep, undo, approve) for ROLE."""
import base64
import html
import json
import re
import sys
from html.parser import HTMLParser


class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.out, self.skip = [], False

    def handle_starttag(self, tag, attrs):
        self.skip = tag in ("style", "script")
        if tag in ("p", "div", "li", "tr", "h1", "h2", "h3", "br"):
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append("  ")

    def handle_endtag(self, tag):
        self.skip = False

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def latest(mails, to):
    mine = [m for m in mails if to in m["destinations"].get("ToAddresses", [])]
    if not mine:
        sys.exit(f"no email to {to}")
    return mine[-1]


def claims(url):
    body = url.split("t=", 1)[1].split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


mails = json.load(sys.stdin)
command, to = sys.argv[1], sys.argv[2]
mail = latest(mails, to)
if command == "show":
    print(f"To: {to}\nSubject: {mail['subject']}")
    parser = Text()
    parser.feed(mail["body"])
    text = re.sub(r"\n\s*\n+", "\n", "".join(parser.out)).strip()
    print(text)
elif command == "link":
    name, action = sys.argv[3], sys.argv[4]
    urls = {html.unescape(u) for u in re.findall(r"https?://[^\s\"'<>]+/answer\?t=[A-Za-z0-9_.\-]+", mail["body"])}
    for url in sorted(urls):
        c = claims(url)
        if c["a"] == action and c["s"].endswith(f"role/{name}"):
            print(url)
            break
    else:
        sys.exit(f"no {action} link for {name} in the email to {to}")
