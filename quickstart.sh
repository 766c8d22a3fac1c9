#!/usr/bin/env bash
# Alkaid quick start: installs the dependencies, builds, and starts the three services on
# a demo root under this checkout (./demo-root), with a demo domain and user.
#   ./quickstart.sh          build and (re)start
#   ./quickstart.sh stop     stop the demo services
set -euo pipefail
cd "$(dirname "$0")"
ROOT="${ALKAID_DEMO_ROOT:-$PWD/demo-root}"
BIN="$PWD/build/bin"
SERVICES=(smtpd pop3imapd controld)

stop_services() {
    for s in "${SERVICES[@]}"; do
        if [ -x "$BIN/alkaid-$s" ] && [ -S "$ROOT/run/$s.sock" ]; then
            "$BIN/alkaid-$s" --root "$ROOT" --ctl STOP >/dev/null 2>&1 || true
        fi
    done
    for _ in $(seq 1 100); do
        running=0
        for s in "${SERVICES[@]}"; do
            pidf="$ROOT/run/$s.pid"
            if [ -f "$pidf" ] && kill -0 "$(cat "$pidf" 2>/dev/null)" 2>/dev/null; then running=1; fi
        done
        [ $running -eq 0 ] && return 0
        sleep 0.1
    done
    echo "quickstart: services did not stop" >&2
    return 1
}

if [ "${1:-}" = "stop" ]; then
    stop_services
    echo "Alkaid demo services stopped."
    exit 0
fi

echo "==> Installing dependencies (Debian packages)"
tools/install-deps.sh
echo "==> Building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

fresh=0
[ -s "$ROOT/config/alkaid.ini" ] || fresh=1
"$BIN/alkaid-user" --root "$ROOT" domain list >/dev/null   # creates the root if new
INI="$ROOT/config/alkaid.ini"
if [ $fresh -eq 1 ]; then
    # the demo listens on loopback, on non-privileged ports
    sed -i -e '/^\[SMTP\]/,/^\[/ { s/^Bind=.*/Bind=127.0.0.1/; s/^Port=.*/Port=2525/;
                                   s/^SubmissionPort=.*/SubmissionPort=2587/; s/^TLSPort=.*/TLSPort=2465/ }' \
           -e '/^\[POP3\]/,/^\[/ { s/^Bind=.*/Bind=127.0.0.1/; s/^Port=.*/Port=2110/; s/^TLSPort=.*/TLSPort=2995/ }' \
           -e '/^\[IMAP\]/,/^\[/ { s/^Bind=.*/Bind=127.0.0.1/; s/^Port=.*/Port=2143/; s/^TLSPort=.*/TLSPort=2993/ }' \
           "$INI"
fi

DOMAIN=demo.test
USER="demo@$DOMAIN"
ACCOUNT_FILE="$ROOT/DEMO-ACCOUNT.txt"
if ! "$BIN/alkaid-user" --root "$ROOT" show "$USER" >/dev/null 2>&1; then
    "$BIN/alkaid-user" --root "$ROOT" domain add "$DOMAIN" >/dev/null 2>&1 || true
    PASSWORD="$(head -c 12 /dev/urandom | base64 | tr -d '/+=' | head -c 14)"
    "$BIN/alkaid-user" --root "$ROOT" add "$USER" --password "$PASSWORD" --admin >/dev/null
    umask 077
    printf 'user: %s\npassword: %s\n' "$USER" "$PASSWORD" > "$ACCOUNT_FILE"
fi

echo "==> Starting the services"
stop_services
for s in "${SERVICES[@]}"; do
    "$BIN/alkaid-$s" --root "$ROOT"
done

port() { sed -n "/^\[$1\]/,/^\[/ s/^$2=//p" "$INI" | head -n1; }
cat <<MSG

Alkaid is running (root: $ROOT)

  Demo account   $(sed -n 's/^user: //p' "$ACCOUNT_FILE")
  Password       $(sed -n 's/^password: //p' "$ACCOUNT_FILE")   (also in $ACCOUNT_FILE)

  SMTP           127.0.0.1:$(port SMTP Port)   (STARTTLS)
  Submission     127.0.0.1:$(port SMTP SubmissionPort)   (STARTTLS, AUTH required)
  SMTPS          127.0.0.1:$(port SMTP TLSPort)   (implicit TLS)
  POP3           127.0.0.1:$(port POP3 Port)   (STLS)
  POP3S          127.0.0.1:$(port POP3 TLSPort)   (implicit TLS)
  IMAP           127.0.0.1:$(port IMAP Port)   (STARTTLS)
  IMAPS          127.0.0.1:$(port IMAP TLSPort)   (implicit TLS)
  Admin port     127.0.0.1:$(port Control AdminPort)  (implicit TLS; the demo account is an administrator)

Try it:
  swaks --server 127.0.0.1:$(port SMTP Port) --to $USER --from you@example.com
  curl -k --user '$USER:<password>' pop3s://127.0.0.1:$(port POP3 TLSPort)/1
  curl -k --user '$USER:<password>' 'imaps://127.0.0.1:$(port IMAP TLSPort)/INBOX;UID=1'
  $BIN/alkaid-admin --port $(port Control AdminPort) --user $USER --ca $ROOT/config/tls/cert.pem top

Logs are in $ROOT/log/, mail in $ROOT/mail/. Stop with: ./quickstart.sh stop
MSG
