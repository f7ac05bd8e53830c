; Inno Setup 6 script of EditedID Desktop for Windows x64.
; Built by packaging\build_windows.ps1, which first builds dist\EditedID with PyInstaller
; and downloads the VC++ runtime to build\redist\vc_redist.x64.exe. By hand:
;   ISCC.exe /DAppVersion=0.1.0 /DTorchVariant=cu128 packaging\editedid.iss
; Output: dist\EditedID-<version>-windows-x64-<variant>-setup.exe (+ -1.bin, -2.bin, ...
; slices when the app is over 2 GB: CUDA builds are; keep the files together).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef TorchVariant
  #define TorchVariant "cu128"
#endif
#define AppName "EditedID"
#define AppExe "EditedID.exe"
#define ConsoleExe "EditedID-console.exe"
#define SourceDir "..\dist\EditedID"
#define Redist "..\build\redist\vc_redist.x64.exe"

[Setup]
AppId={{6B1E7A52-3C1D-4F7E-9D55-2A7C0E1F4B93}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion} ({#TorchVariant})
AppPublisher=EditedID Desktop
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-user install by default (no administrator needed); the first page offers
; "install for all users" (Program Files), and /ALLUSERS or /CURRENTUSER on the command line.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\dist
OutputBaseFilename={#AppName}-{#AppVersion}-windows-x64-{#TorchVariant}-setup
SetupIconFile=..\resources\icons\editedid.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} {#AppVersion}
WizardStyle=modern
; CUDA builds are 3-5 GB: one setup.exe cannot hold that (Windows will not run an .exe
; over 2 GB; Inno's slices are at most 2.1 GB), so span into setup-N.bin slices.
DiskSpanning=yes
DiskSliceSize=max
Compression=lzma2/max
SolidCompression=yes
LZMAUseSeparateProcess=yes
LZMANumBlockThreads=4
; The app is hundreds of files in one folder; installing over an older version replaces it.
CloseApplications=yes
RestartApplications=no
ChangesAssociations=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; Remove the previous version's libraries so a torch/CUDA variant change leaves no stale DLLs.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "{#Redist}"; DestDir: "{tmp}"; Flags: deleteafterinstall; Check: VCRedistNeedsInstall

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; IconFilename: "{app}\{#AppExe}"
Name: "{group}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k """"{app}\{#ConsoleExe}"" --self-test"""; WorkingDir: "{app}"; IconFilename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
; PyTorch and onnxruntime need the Microsoft Visual C++ 2015-2022 runtime (x64).
Filename: "{tmp}\vc_redist.x64.exe"; Parameters: "/install /quiet /norestart"; StatusMsg: "Installing the Microsoft Visual C++ runtime..."; Flags: waituntilterminated shellexec; Check: VCRedistNeedsInstall
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Models and settings live in %LOCALAPPDATA%\EditedID and are kept (they are large and
; the user's); a "models" folder the user put next to the app is kept too.
Type: filesandordirs; Name: "{app}\_internal"

[Code]
const
  VCRuntimeKey = 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64';
  { 14.40.33810 (VS 2022 17.10): binaries built with 17.10+ crash in std::mutex with an
    older msvcp140.dll, so an older runtime is upgraded. }
  MinVCBuild = 33810;

function VCRedistNeedsInstall: Boolean;
var
  Installed, Build: Cardinal;
begin
  Result := True;
  if RegQueryDWordValue(HKLM64, VCRuntimeKey, 'Installed', Installed) and (Installed = 1) then
    if RegQueryDWordValue(HKLM64, VCRuntimeKey, 'Bld', Build) and (Build >= MinVCBuild) then
      Result := False;
end;
