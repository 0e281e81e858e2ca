#!/usr/bin/env bash
# Make a local MySQL-compatible server available for ratpose (used by .ci/run; see README).
# 1. If a server already answers on $DJ_HOST:$DJ_PORT (default 127.0.0.1:3306) with the configured
#    credentials, do nothing.
# 2. Else, if mariadbd is installed, start it; if not, install mariadb-server with apt and start it.
# 3. Create the user given by DJ_USER/DJ_PASS (when not root) with rights on its schemas.
set -euo pipefail
HOST="${DJ_HOST:-127.0.0.1}"; PORT="${DJ_PORT:-3306}"; USER_="${DJ_USER:-root}"; PASS="${DJ_PASS:-}"
PY="${PYTHON:-python3}"

answers() {
  "$PY" - "$HOST" "$PORT" "$USER_" "$PASS" <<'PYEOF' >/dev/null 2>&1
import sys, pymysql
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=3).close()
PYEOF
}

if answers; then echo "local-db: server answers on $HOST:$PORT as $USER_"; exit 0; fi

if ! command -v mariadbd >/dev/null 2>&1; then
  echo "local-db: installing mariadb-server (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null
fi
if ! mysqladmin ping --silent 2>/dev/null; then
  echo "local-db: starting mariadbd"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do mysqladmin ping --silent 2>/dev/null && break; sleep 1; done
fi
if [ "$USER_" != "root" ]; then
  mysql -uroot <<SQL
CREATE USER IF NOT EXISTS '$USER_'@'%' IDENTIFIED BY '$PASS';
CREATE USER IF NOT EXISTS '$USER_'@'localhost' IDENTIFIED BY '$PASS';
GRANT ALL PRIVILEGES ON \`${RATPOSE_DB_PREFIX:-ratpose}%\`.* TO '$USER_'@'%';
GRANT ALL PRIVILEGES ON \`${RATPOSE_DB_PREFIX:-ratpose}%\`.* TO '$USER_'@'localhost';
SQL
fi
answers && echo "local-db: server ready on $HOST:$PORT as $USER_" || { echo "local-db: server still does not answer on $HOST:$PORT" >&2; exit 1; }
