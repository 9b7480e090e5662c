# scripts/smoke.ps1: the smoke test of one real Windows machine, for the hosted
# Windows runner (.github/workflows/platforms.yml); scripts/smoke.sh is the
# same test for macOS and Linux. It has not run anywhere yet: this repository's
# own machines run Linux only.
#
# ztcloud (tenant API and PoP), a publisher, its resolver (e2e/smokedns) and a
# web server (e2e/labweb) run on loopback; the agent runs in the foreground
# (through e2e/fg, which presses Ctrl+Break for the script), as administrator;
# http://web.smoke.test:8080/ is fetched by name through it (NRPT sends the
# name to the agent), then the agent is stopped and the NRPT rules, the DNS
# servers and the routing table must be as they were before it started.
#
# Needs: an elevated shell, Go, curl.exe, and $env:ZT_WINTUN_DLL naming the
# wintun.dll of this architecture (https://www.wintun.net).
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')
$Dir = if ($env:ZT_SMOKE_DIR) { $env:ZT_SMOKE_DIR } else { Join-Path $PWD '.smoke' }
$Bin = Join-Path $Dir 'bin'
$Pipe = '\\.\pipe\ztagent-smoke'
$Procs = @()

function Say($msg) { Write-Host "`nsmoke: $msg" -ForegroundColor Cyan }
function Fail($msg) {
    Write-Host "smoke FAILED: $msg" -ForegroundColor Red
    Get-ChildItem $Dir -Filter *.log -ErrorAction SilentlyContinue | ForEach-Object {
        Write-Host "--- $($_.FullName) (last lines)"
        Get-Content $_.FullName -Tail 30
    }
    Stop-All
    exit 1
}
function Stop-All { foreach ($p in $script:Procs) { if (-not $p.HasExited) { Stop-Process -Id $p.Id -Force -ErrorAction SilentlyContinue } } }

# Start NAME EXE ARGS: runs EXE in the background, logging to DIR\NAME.log.
function Start-Bg($name, $exe, [string[]]$argv) {
    $p = Start-Process -FilePath $exe -ArgumentList $argv -NoNewWindow -PassThru `
        -RedirectStandardOutput (Join-Path $Dir "$name.log") -RedirectStandardError (Join-Path $Dir "$name.err.log")
    $script:Procs += $p
    return $p
}

function Wait-For($desc, $seconds, [scriptblock]$ok) {
    $deadline = (Get-Date).AddSeconds($seconds)
    while ((Get-Date) -lt $deadline) {
        try { if (& $ok) { return } } catch { }
        Start-Sleep -Milliseconds 200
    }
    Fail "$desc did not come up within ${seconds}s"
}

# Snapshot: the OS resolver configuration and the routing table, less what
# changes by itself (multicast and broadcast entries).
function Snapshot {
    '# NRPT'
    Get-DnsClientNrptRule | Sort-Object Namespace | ForEach-Object { "$($_.Namespace) -> $($_.NameServers -join ',')" }
    '# DNS servers'
    Get-DnsClientServerAddress | Sort-Object InterfaceAlias, AddressFamily |
        ForEach-Object { "$($_.InterfaceAlias) $($_.AddressFamily) $($_.ServerAddresses -join ',')" }
    '# routes'
    Get-NetRoute -PolicyStore ActiveStore |
        Where-Object { $_.DestinationPrefix -notmatch '^(ff00::/8|224\.0\.0\.0/4|255\.255\.255\.255/32)$' } |
        Sort-Object DestinationPrefix, InterfaceAlias, NextHop |
        ForEach-Object { "$($_.DestinationPrefix) $($_.InterfaceAlias) $($_.NextHop)" }
}

Say 'build'
Remove-Item -Recurse -Force $Dir -ErrorAction SilentlyContinue
New-Item -ItemType Directory -Force $Bin, (Join-Path $Dir 'secrets') | Out-Null
go build -o "$Bin\" ./cmd/ztagent ./cmd/ztcloud ./cmd/ztdiag ./e2e/labweb ./e2e/smokedns ./e2e/fg
if ($LASTEXITCODE) { Fail 'go build' }
if (-not $env:ZT_WINTUN_DLL) { Fail 'set ZT_WINTUN_DLL to the wintun.dll of this architecture (https://www.wintun.net)' }
Copy-Item $env:ZT_WINTUN_DLL $Bin # the TUN (wireguard/tun) loads it from beside ztagent.exe
Set-Content -NoNewline (Join-Path $Dir 'secrets\org.key') 'smoke-org-key-5d2a9c1e7b40f386'
Set-Content -NoNewline (Join-Path $Dir 'secrets\publisher.token') 'smoke-publisher-token-71c0e4a9b2d8'
$CA = Join-Path $Dir 'cloud\ca.pem'

Say 'snapshot the resolver and the routes'
$before = Snapshot

Say 'start ztcloud, the publisher, its resolver and the web server on loopback'
Start-Bg smokedns "$Bin\smokedns.exe" @('--listen', '127.0.0.1:5353', '--zone', 'smoke.test', '--addr', '127.0.0.1') | Out-Null
Start-Bg labweb "$Bin\labweb.exe" @('--name', 'smoke', '--listen', '127.0.0.1:8080') | Out-Null
Start-Bg ztcloud "$Bin\ztcloud.exe" @('serve', '--roles', 'tenant,pop', '--tenant', 'testdata/tenants/smoke.yaml',
    '--state', (Join-Path $Dir 'cloud'), '--api', '127.0.0.1:8444', '--pop', '127.0.0.1:8443', '--names', '127.0.0.1',
    '--drain-timeout', '2s') | Out-Null
Wait-For 'ztcloud tenant API' 30 {
    if (-not (Test-Path $CA)) { return $false }
    curl.exe -sf --cacert $CA https://127.0.0.1:8444/v1/health | Out-Null
    $LASTEXITCODE -eq 0
}
Start-Bg publisher "$Bin\ztcloud.exe" @('publisher', '--name', 'pub1', '--token', "@$Dir\secrets\publisher.token",
    '--tenant-url', 'https://127.0.0.1:8444', '--cacert', $CA, '--resolver', '127.0.0.1:5353',
    '--state', (Join-Path $Dir 'publisher')) | Out-Null
Wait-For 'web server' 10 { curl.exe -sf http://127.0.0.1:8080/ | Out-Null; $LASTEXITCODE -eq 0 }

Say 'start the agent in the foreground'
$stop = Join-Path $Dir 'agent.stop'
$agent = Start-Bg fg "$Bin\fg.exe" @('-log', (Join-Path $Dir 'agent.log'), '-stop', $stop, '--',
    "$Bin\ztagent.exe", 'run', '--state-dir', (Join-Path $Dir 'agent'), '--socket', $Pipe, '--log-dir', (Join-Path $Dir 'agent-logs'), '--log-level', 'debug',
    'host=127.0.0.1:8444', "token=@$Dir\secrets\org.key", 'upn=alice@smoke.test', "cacert=$CA")
Wait-For 'ztagent' 60 { ((& "$Bin\ztdiag.exe" --socket $Pipe status --json) -join "`n") -match '"state":\s*"connected"' }
& "$Bin\ztdiag.exe" --socket $Pipe status
if ($LASTEXITCODE) { Fail 'ztdiag status' }

Say 'fetch http://web.smoke.test:8080/ by name through agent -> PoP -> publisher'
$page = ''
for ($i = 0; $i -lt 20; $i++) {
    $page = (curl.exe -sS --max-time 10 http://web.smoke.test:8080/) -join "`n"
    if ($LASTEXITCODE -eq 0) { break }
    Start-Sleep -Milliseconds 500
}
Write-Host $page
if ($page -notmatch 'hello from smoke web') { Fail "did not fetch the page by name (got '$page')" }
if ($page -notmatch 'host=web\.smoke\.test:8080') { Fail 'the page was not asked for by name' }

Say 'stop the agent (Ctrl+Break)'
New-Item -ItemType File $stop | Out-Null
if (-not $agent.WaitForExit(60000)) { Fail 'the agent did not stop within 60s' }
if ($agent.ExitCode -ne 0) { Fail "the agent exited with $($agent.ExitCode)" }

Say 'the resolver and the routes are as they were'
# The DNS client may take a moment to apply the restored NRPT.
for ($i = 0; $i -lt 10; $i++) {
    $diff = Compare-Object $before (Snapshot)
    if (-not $diff) { break }
    Start-Sleep -Seconds 1
}
if ($diff) { $diff | Format-Table -AutoSize | Out-String | Write-Host; Fail 'the resolver or the routes differ after the agent stopped' }
if (Test-Path (Join-Path $Dir 'agent\routes.journal')) { Fail "the router's journal is still there" }
Stop-All
Write-Host "`nsmoke OK"
