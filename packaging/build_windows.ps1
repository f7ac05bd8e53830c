<#
.SYNOPSIS
  Build the Windows installer of EditedID Desktop for one PyTorch variant.

.DESCRIPTION
  1. creates build\venv-<variant> with Python 3.11 and installs every dependency (PyTorch
     of that variant, PyInstaller, ...) from the lock, packaging\lock\windows-<variant>.txt,
     with `pip install --require-hashes`, then this project with --no-deps; the lock is
     made by packaging/refresh_lock.sh (a missing lock stops the build: -Unlocked installs
     the newest versions pyproject.toml allows instead, with PyTorch $TorchSpec);
  2. builds dist\EditedID with PyInstaller (packaging\editedid.spec);
  3. runs dist\EditedID\EditedID-console.exe --self-test (the build fails if it fails);
  4. downloads the VC++ runtime (build\redist\vc_redist.x64.exe) once;
  5. compiles packaging\editedid.iss with Inno Setup 6 (ISCC.exe) into
     dist\EditedID-<version>-windows-x64-<variant>-setup.exe (+ .bin slices over 2 GB).

  Variants (see packaging\README.md):
    cpu    no NVIDIA GPU needed (slow)
    cu126  CUDA 12.6: GTX 9xx/10xx (Maxwell/Pascal), Volta, Turing, Ampere, Ada, Hopper
    cu128  CUDA 12.8: Turing (RTX 20xx) and newer, including RTX 50xx (Blackwell)

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1 -Torch cu128
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1 -Torch cpu -Unlocked
#>
param(
    [ValidateSet("cpu", "cu126", "cu128")]
    [string]$Torch = "cu128",
    # -Unlocked only: torch versions with all three variants (2.15 is planned to drop cu126:
    # pytorch#190385). The lock pins its own torch.
    [string]$TorchSpec = "torch>=2.8,<2.15",
    [switch]$Unlocked,
    [string]$Python = "py -3.11",
    [string]$Iscc = "",
    [switch]$SkipInstaller,
    [switch]$Clean
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Root = Resolve-Path (Join-Path $PSScriptRoot "..")
Set-Location $Root
$Venv = Join-Path $Root "build\venv-$Torch"
$Py = Join-Path $Venv "Scripts\python.exe"
$Lock = Join-Path $Root "packaging\lock\windows-$Torch.txt"
$TorchIndex = "https://download.pytorch.org/whl/$Torch"

function Invoke-Checked([string]$What, [scriptblock]$Block) {
    Write-Host "== $What"
    & $Block
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit $LASTEXITCODE)" }
}

if (-not $Unlocked -and -not (Test-Path $Lock)) {
    throw ("no dependency lock for windows-${Torch}: $Lock is missing. It is made by " +
        "'bash packaging/refresh_lock.sh' where $TorchIndex answers; -Unlocked builds " +
        "with the newest versions pyproject.toml allows (not reproducible).")
}
if ($Clean -and (Test-Path $Venv)) { Remove-Item -Recurse -Force $Venv }
if (-not (Test-Path $Py)) {
    $parts = @($Python.Split(" ", [System.StringSplitOptions]::RemoveEmptyEntries))
    $exe = $parts[0]
    $pyArgs = @($parts | Select-Object -Skip 1)
    Invoke-Checked "create $Venv" { & $exe @pyArgs -m venv $Venv }
}
Invoke-Checked "upgrade pip" { & $Py -m pip install --upgrade pip }
if ($Unlocked) {
    Write-Host "== -Unlocked: the newest versions pyproject.toml allows, not the lock"
    Invoke-Checked "install $TorchSpec ($Torch)" {
        & $Py -m pip install $TorchSpec --index-url $TorchIndex
    }
    Invoke-Checked "install EditedID and PyInstaller" { & $Py -m pip install "." "pyinstaller>=6.6" }
} else {
    Invoke-Checked "Python 3.11 (the lock is made for it)" {
        & $Py -c "import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 3)"
    }
    # The CPU lock is all PyPI (PyPI's Windows torch is the CPU build); a CUDA lock's torch
    # and CUDA libraries come from the PyTorch index of the variant.
    $Extra = @()
    if ($Torch -ne "cpu") { $Extra = @("--extra-index-url", $TorchIndex) }
    Invoke-Checked "install every dependency from $Lock" {
        & $Py -m pip install --require-hashes -r $Lock @Extra
    }
    $Unlisted = @(& $Py packaging\lock_check.py extras $Lock)
    if ($LASTEXITCODE -ne 0) { throw "listing what the lock does not list failed" }
    if ($Unlisted.Count -gt 0) {
        Invoke-Checked "remove what the lock does not list: $Unlisted" {
            & $Py -m pip uninstall -y @Unlisted
        }
    }
    Invoke-Checked "install EditedID (--no-deps: its dependencies are the lock's)" {
        & $Py -m pip install --no-deps --no-build-isolation "."
    }
    Invoke-Checked "the venv holds exactly the lock" { & $Py packaging\lock_check.py verify $Lock }
}
Invoke-Checked "check the torch variant" {
    & $Py -c "import sys, torch; c = torch.version.cuda; v = 'cpu' if c is None else 'cu' + c.replace('.', '')[:3]; print('torch', torch.__version__, v); sys.exit(0 if v == '$Torch' else 3)"
}

$Version = & $Py -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])"
Invoke-Checked "PyInstaller (dist\EditedID)" {
    & $Py -m PyInstaller --noconfirm --clean --distpath dist --workpath build\pyinstaller packaging\editedid.spec
}
Invoke-Checked "self-test of the bundle" { & dist\EditedID\EditedID-console.exe --self-test }
$Size = (Get-ChildItem -Recurse dist\EditedID | Measure-Object -Sum Length).Sum / 1GB
Write-Host ("== bundle: {0:N2} GB" -f $Size)

if ($SkipInstaller) { exit 0 }

$Redist = Join-Path $Root "build\redist\vc_redist.x64.exe"
if (-not (Test-Path $Redist)) {
    New-Item -ItemType Directory -Force (Split-Path $Redist) | Out-Null
    Write-Host "== download the VC++ 2015-2022 runtime"
    Invoke-WebRequest "https://aka.ms/vs/17/release/vc_redist.x64.exe" -OutFile $Redist
}

if (-not $Iscc) {
    $Iscc = @(
        "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe",
        "$env:ProgramFiles\Inno Setup 6\ISCC.exe",
        "$env:LOCALAPPDATA\Programs\Inno Setup 6\ISCC.exe"
    ) | Where-Object { Test-Path $_ } | Select-Object -First 1
}
if (-not $Iscc) { throw "ISCC.exe (Inno Setup 6) not found: install it or pass -Iscc <path>" }
Invoke-Checked "Inno Setup" {
    & $Iscc "/DAppVersion=$Version" "/DTorchVariant=$Torch" packaging\editedid.iss
}
Get-ChildItem dist -Filter "EditedID-$Version-windows-x64-$Torch-setup*" | ForEach-Object {
    Write-Host ("== {0}  {1:N2} GB" -f $_.Name, ($_.Length / 1GB))
}
