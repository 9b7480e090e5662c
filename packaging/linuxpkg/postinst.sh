#!/bin/sh
# ztagent post-install: deb postinst (configure [old-version], abort-*) and
# rpm %post (1 = install, 2 = upgrade). Registers and (re)starts the service
# through `ztagent install` with the silent parameters: /etc/default/ztagent,
# then /etc/ztagent/install.params, then ZTAGENT_<KEY> in the environment
# (each wins over the one before). With none of them and nothing saved by an
# earlier install, the service is left unregistered, with a note. Running it
# again is harmless: `ztagent install` replaces the registration.
set -e

case "$1" in
  configure|abort-upgrade|abort-remove|abort-deconfigure|1|2) ;;
  *) exit 0 ;;
esac

STATE=/var/lib/ztagent
mkdir -p "$STATE" && chmod 0700 "$STATE"

set --
configured=
for f in /etc/default/ztagent /etc/ztagent/install.params; do
  [ -r "$f" ] || continue
  set -- "$@" --params-file "$f"
  grep -qs '^[[:space:]]*[A-Za-z]*[[:space:]]*=[[:space:]]*[^[:space:]#]' "$f" && configured=1
done
# Non-secret parameters from the environment go on the command line; the
# secret ones (ZTAGENT_TOKEN, ZTAGENT_ENROLLAUTHTOKEN,
# ZTAGENT_ENROLLENCRYPTIONTOKEN, ZTAGENT_USERKEY) ztagent reads from its
# environment itself, so that they never show in the process list.
for key in host upn cacert installmode tenant domain mode prelogonuser; do
  var=ZTAGENT_$(echo "$key" | tr '[:lower:]' '[:upper:]')
  eval "val=\${$var:-}"
  if [ -n "$val" ]; then set -- "$@" "$key=$val"; configured=1; fi
done
for var in ZTAGENT_TOKEN ZTAGENT_ENROLLAUTHTOKEN ZTAGENT_ENROLLENCRYPTIONTOKEN ZTAGENT_USERKEY; do
  eval "val=\${$var:-}"
  [ -n "$val" ] && configured=1
done
[ -f "$STATE/params.json" ] && configured=1
[ -f /etc/ztagent/mdm.json ] && configured=1

if [ -z "$configured" ]; then
  echo "ztagent: no install parameters yet: the service is not registered." >&2
  echo "ztagent: set them in /etc/ztagent/install.params (key=value), then run: ztagent install --params-file /etc/ztagent/install.params" >&2
  exit 0
fi
/usr/bin/ztagent install "$@"
