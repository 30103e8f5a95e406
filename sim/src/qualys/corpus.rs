//! Word lists and text fragments the report generator ([`super::generate`]) draws from:
//! services, operating systems, titles, HTML pieces and RESULT material. Nothing here may
//! contain `]]>` (every text goes inside CDATA) or an XML-special character unless it is
//! only ever written inside CDATA.

/// Transport of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// IANA protocol number, used in the per-host uniqueness key.
    pub(crate) fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

/// A listening service as Qualys names it in `SERVICE`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Service {
    pub port: u16,
    pub proto: Proto,
    pub name: &'static str,
    pub description: &'static str,
    pub ssl: bool,
}

const fn svc(
    port: u16,
    proto: Proto,
    name: &'static str,
    description: &'static str,
    ssl: bool,
) -> Service {
    Service {
        port,
        proto,
        name,
        description,
        ssl,
    }
}

use Proto::{Tcp, Udp};

pub(crate) const SERVICES: &[Service] = &[
    svc(21, Tcp, "ftp", "File Transfer Protocol", false), // 0
    svc(22, Tcp, "ssh", "SSH Remote Login Protocol", false), // 1
    svc(23, Tcp, "telnet", "Telnet", false),              // 2
    svc(25, Tcp, "smtp", "Simple Mail Transfer Protocol", false), // 3
    svc(53, Udp, "domain", "Domain Name Server", false),  // 4
    svc(80, Tcp, "http", "World Wide Web HTTP", false),   // 5
    svc(111, Udp, "rpc", "SUN Remote Procedure Call", false), // 6
    svc(123, Udp, "ntp", "Network Time Protocol", false), // 7
    svc(135, Tcp, "msrpc", "DCE Endpoint Resolution", false), // 8
    svc(137, Udp, "netbios ns", "NETBIOS Name Service", false), // 9
    svc(139, Tcp, "netbios ssn", "NETBIOS Session Service", false), // 10
    svc(161, Udp, "snmp", "SNMP", false),                 // 11
    svc(
        389,
        Tcp,
        "ldap",
        "Lightweight Directory Access Protocol",
        false,
    ), // 12
    svc(
        443,
        Tcp,
        "http over ssl",
        "http protocol over TLS/SSL",
        true,
    ), // 13
    svc(445, Tcp, "microsoft-ds", "Microsoft-DS", false), // 14
    svc(500, Udp, "isakmp", "ISAKMP", false),             // 15
    svc(
        636,
        Tcp,
        "ldap over ssl",
        "ldap protocol over TLS/SSL",
        true,
    ), // 16
    svc(1433, Tcp, "mssql", "Microsoft-SQL-Server", false), // 17
    svc(3306, Tcp, "mysql", "MySQL", false),              // 18
    svc(
        3389,
        Tcp,
        "win remote desktop",
        "Microsoft Remote Display Protocol",
        true,
    ), // 19
    svc(5432, Tcp, "postgresql", "PostgreSQL Database", false), // 20
    svc(8080, Tcp, "http", "HTTP Alternate", false),      // 21
    svc(8443, Tcp, "http over ssl", "PCsync HTTPS", true), // 22
    svc(53, Tcp, "domain", "Domain Name Server", false),  // 23
    svc(1900, Udp, "ssdp", "SSDP", false),                // 24
    svc(9100, Tcp, "jetdirect", "HP JetDirect card", false), // 25
];

/// How Qualys tracks a host (`TRACKING_METHOD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tracking {
    Ip,
    Dns,
    Netbios,
    Qagent,
}

impl Tracking {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tracking::Ip => "IP",
            Tracking::Dns => "DNS",
            Tracking::Netbios => "NETBIOS",
            Tracking::Qagent => "QAGENT",
        }
    }
}

/// A kind of host: what it runs, what it listens on, how it is named and tracked.
#[derive(Debug)]
pub(crate) struct Family {
    /// Relative frequency among hosts.
    pub weight: u64,
    pub os: &'static [&'static str],
    /// Indexes into [`SERVICES`]; the first one is always open.
    pub services: &'static [usize],
    pub dns_prefix: &'static [&'static str],
    pub windows: bool,
    /// Tracking methods with their relative weights.
    pub tracking: &'static [(Tracking, u64)],
}

pub(crate) const FAMILIES: &[Family] = &[
    Family {
        weight: 25,
        os: &[
            "Windows 2016/2019/10",
            "Windows Server 2019 Standard 64 bit Edition Version 1809",
            "Windows 2012 R2 Standard 64 bit Edition",
            "Microsoft Windows Server 2022 Datacenter 64 bit Edition Version 21H2",
            "Windows 2008 R2 Enterprise Service Pack 1",
        ],
        services: &[14, 8, 10, 19, 9, 5, 13, 17, 12, 16, 7, 4, 23],
        dns_prefix: &["srv", "dc", "sql", "file", "app"],
        windows: true,
        tracking: &[
            (Tracking::Netbios, 50),
            (Tracking::Dns, 30),
            (Tracking::Ip, 10),
            (Tracking::Qagent, 10),
        ],
    },
    Family {
        weight: 30,
        os: &[
            "Windows 10 Enterprise 64 bit Edition Version 21H2",
            "Windows 10 Pro 64 bit Edition Version 22H2",
            "Windows 11 Enterprise 64 bit Edition Version 23H2",
            "Windows 7 Professional Service Pack 1",
        ],
        services: &[14, 8, 10, 19, 9, 24],
        dns_prefix: &["wks", "lap", "pc"],
        windows: true,
        tracking: &[
            (Tracking::Netbios, 45),
            (Tracking::Dns, 25),
            (Tracking::Qagent, 20),
            (Tracking::Ip, 10),
        ],
    },
    Family {
        weight: 30,
        os: &[
            "Ubuntu / Tiny Core Linux / Linux 2.6.x",
            "Red Hat Enterprise Linux Server 7.9",
            "Red Hat Enterprise Linux 8.8",
            "CentOS Linux 7.9.2009",
            "Debian GNU/Linux 11.6",
            "Ubuntu 22.04.3 LTS",
            "SUSE Linux Enterprise Server 15 SP4",
            "Linux 2.4-2.6 / Embedded Device / F5 Networks Big-IP / Linux 2.6",
        ],
        services: &[1, 5, 13, 21, 22, 18, 20, 3, 6, 7, 11],
        dns_prefix: &["web", "app", "db", "lnx", "k8s-node", "mail"],
        windows: false,
        tracking: &[
            (Tracking::Dns, 60),
            (Tracking::Ip, 25),
            (Tracking::Qagent, 15),
        ],
    },
    Family {
        weight: 7,
        os: &[
            "Cisco IOS 15.2(4)M7",
            "Cisco Adaptive Security Appliance 9.8(4)",
            "Juniper JUNOS 18.4R1",
            "Fortinet FortiOS 6.4.x",
            "HP ProCurve Switch / Aruba OS",
        ],
        services: &[1, 2, 5, 13, 11, 7, 15],
        dns_prefix: &["rtr", "sw", "fw", "vpn"],
        windows: false,
        tracking: &[(Tracking::Ip, 60), (Tracking::Dns, 40)],
    },
    Family {
        weight: 4,
        os: &[
            "HP JetDirect / HP LaserJet M506",
            "Canon imageRUNNER ADVANCE C5535",
            "Xerox WorkCentre 7855",
        ],
        services: &[25, 5, 13, 11, 0],
        dns_prefix: &["prn", "mfp"],
        windows: false,
        tracking: &[(Tracking::Ip, 70), (Tracking::Dns, 30)],
    },
    Family {
        weight: 4,
        os: &[
            "VMware ESXi 7.0.3 build-20328353",
            "VMware ESXi 6.7.0 build-17700523",
        ],
        services: &[1, 5, 13, 7, 11],
        dns_prefix: &["esx", "vcsa"],
        windows: false,
        tracking: &[(Tracking::Dns, 55), (Tracking::Ip, 45)],
    },
];

pub(crate) const SITES: &[&str] = &["nyc", "fra", "sjc", "zrh", "sin", "lon", "par"];

pub(crate) const DOMAINS: &[&str] = &["corp.example.com", "example.net", "lab.example.org"];

/// Asset group titles; some need care in CSV and XML text.
pub(crate) const ASSET_GROUPS: &[&str] = &[
    "All",
    "Data Center \u{2013} Z\u{fc}rich",
    "DMZ & Edge",
    "PCI \"Cardholder\" Zone",
    "Workstations, Finance",
    "Servers",
    "Sant\u{e9} / Lab's Network",
];

/// Categories of information-gathering QIDs.
pub(crate) const IG_CATEGORIES: &[&str] = &[
    "Information gathering",
    "TCP/IP",
    "Firewall",
    "General remote services",
    "Windows",
];

/// Categories of vulnerability QIDs.
pub(crate) const VULN_CATEGORIES: &[&str] = &[
    "Windows",
    "Local",
    "Web server",
    "CGI",
    "General remote services",
    "Security Policy",
    "Database",
    "RedHat",
    "Ubuntu",
    "Debian",
    "SUSE",
    "Hardware",
    "Office Application",
    "Internet Explorer",
    "Web Application",
];

/// Titles of information-gathering QIDs.
pub(crate) const IG_TITLES: &[&str] = &[
    "DNS Host Name",
    "Traceroute",
    "Open TCP Services List",
    "Open UDP Services List",
    "Operating System Detected",
    "Host Scan Time - Scanner",
    "Firewall Detected",
    "ICMP Replies Received",
    "Network Adapter MAC Address",
    "Installed Applications Enumerated From Windows Installer",
    "SSL Certificate - Information",
    "Host Names Found",
    "Degree of Randomness of TCP Initial Sequence Numbers",
    "Windows Authentication Method for User-Provided Credentials",
    "Text-based Remote Login Service Detected",
    "Web Server Version",
    "SSH daemon information retrieved",
    "Target Network Information",
    "Internet Service Provider",
    "List of Web Directories",
    "NetBIOS Host Name",
    "Scan Activity per Port",
];

/// Qualifiers appended to information-gathering titles so that titles vary.
pub(crate) const IG_QUALIFIERS: &[&str] = &[
    "via SNMP",
    "via SMB",
    "from \"Server\" Header",
    "over TLS, Unauthenticated",
    "(Agent)",
    "for IPv6 & IPv4",
    "from Host's Registry",
];

/// Products of vulnerability titles; a few need care in CSV (commas, quotes, `&`,
/// apostrophes) and a few are not ASCII.
pub(crate) const PRODUCTS: &[&str] = &[
    "Microsoft Windows",
    "Microsoft Office",
    "Microsoft Exchange Server",
    "Microsoft Edge (Chromium-based)",
    "Oracle Java SE",
    "Oracle MySQL",
    "OpenSSL",
    "OpenSSH",
    "Apache HTTP Server",
    "Apache Tomcat",
    "Apache Log4j",
    "nginx",
    "PHP",
    "PostgreSQL",
    "Samba",
    "ISC BIND",
    "Mozilla Firefox",
    "Google Chrome",
    "Adobe Acrobat, Reader",
    "Adobe Flash Player",
    "Cisco IOS XE",
    "Cisco Adaptive Security Appliance (ASA)",
    "VMware ESXi",
    "VMware vCenter Server",
    "Citrix ADC & Gateway",
    "AT&T Connect Client",
    "Fortinet FortiOS",
    "Palo Alto Networks PAN-OS",
    "HP LaserJet Printers",
    "Dell iDRAC",
    "Node.js",
    "jQuery",
    "WordPress",
    "Drupal",
    "\"Simple\" Directory Browser",
    "Bob's Backup Agent",
    "J\u{fc}rgen's FTP Daemon",
    "Caf\u{e9} Wiki",
    "Z\u{fc}rich Online-Banking Plug-in",
    "Canon imagePROGRAF Firmware (R\u{e9}v. B)",
];

/// Package names used by distribution advisories and RESULT tables.
pub(crate) const PACKAGES: &[&str] = &[
    "kernel",
    "openssl",
    "glibc",
    "curl",
    "sudo",
    "bind",
    "samba",
    "systemd",
    "python3",
    "libxml2",
    "openssh",
    "httpd",
    "nss",
    "git",
    "zlib",
    "polkit",
    "tzdata",
    "java-1.8.0-openjdk",
];

/// Issues of vulnerability titles.
pub(crate) const ISSUES: &[&str] = &[
    "Multiple Vulnerabilities",
    "Remote Code Execution Vulnerability",
    "Denial of Service (DoS) Vulnerability",
    "Information Disclosure Vulnerability",
    "Cross-Site Scripting (XSS) Vulnerability",
    "Privilege Escalation, Security Bypass Vulnerabilities",
    "Use-After-Free Vulnerability",
    "'Heartbleed' Memory Disclosure",
    "Weak SSL/TLS Ciphers Supported",
    "Out-of-Date Version Detected",
    "Security Feature Bypass Vulnerability",
    "Heap-based Buffer Overflow",
    "Default \"admin\" Credentials",
    "Directory Traversal & File Disclosure",
    "End of Life (EOL) / Obsolete Software",
    "Spoofing Vulnerability",
];

pub(crate) const DISTROS: &[(&str, &str)] = &[
    ("Red Hat Update for", "RHSA"),
    ("Ubuntu Security Notification for", "USN"),
    ("Debian Security Update for", "DSA"),
    ("SUSE Enterprise Linux Security Update for", "SUSE-SU"),
    ("CentOS Security Update for", "CESA"),
    ("Oracle Enterprise Linux Security Update for", "ELSA"),
];

pub(crate) const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Vulnerable components in THREAT text.
pub(crate) const COMPONENTS: &[&str] = &[
    "xmlNextChar function",
    "TLS handshake parser",
    "SMBv1 server",
    "Print Spooler service",
    "HTTP/2 request handler",
    "X.509 certificate verification",
    "JNDI lookup feature",
    "Win32k kernel-mode driver",
    "mod_proxy module",
    "session cookie handling",
    "LDAP referral code",
    "DNS resolver",
    "image decoding library",
    "management web interface",
];

/// Effects in THREAT and IMPACT text.
pub(crate) const EFFECTS: &[&str] = &[
    "execute arbitrary code",
    "cause a denial of service (heap-based buffer over-read)",
    "obtain sensitive information",
    "bypass authentication",
    "gain elevated privileges",
    "inject arbitrary web script or HTML",
    "read arbitrary files",
    "spoof the identity of a trusted server",
];

/// Vectors in THREAT text.
pub(crate) const VECTORS: &[&str] = &[
    "a crafted XML document",
    "a specially crafted packet",
    "a malicious web page",
    "a long \"Host\" header",
    "an unexpected character in a crafted HTML document",
    "a forged certificate",
    "crafted SMB requests",
];

/// IMPACT sentences of vulnerability QIDs.
pub(crate) const IMPACTS: &[&str] = &[
    "Successful exploitation allows remote attackers to execute arbitrary code on the target system.",
    "An attacker can exploit these vulnerabilities to cause a denial of service condition.",
    "Exploiting this vulnerability may allow an attacker to obtain sensitive information that may aid in further attacks.",
    "Successful exploitation could allow a local user to gain root privileges.",
    "An attacker may be able to intercept or modify data in transit (a \"man-in-the-middle\" attack).",
    "Unauthorized users can build a list of services running on the host & then exploit them.",
];

/// THREAT sentences of information-gathering QIDs.
pub(crate) const IG_THREATS: &[&str] = &[
    "The fully qualified domain name of this host, if it was obtained from a DNS server, is displayed in the RESULT section.",
    "The scanner identified the list of open services on this host; the details are displayed in the RESULT section.",
    "Traceroute describes the path in realtime from the scanner to the remote host being contacted. It reports the IP addresses of all the routers in between.",
    "The operating system of the host was detected using TCP/IP stack fingerprinting &amp; the service banners.",
    "This test gives the time taken by the scanner to scan the host, the time when the scan started and the time when it ended.",
    "The host responded to the ICMP probes listed in the RESULT section.",
];

/// SSH algorithms for RESULT tables.
pub(crate) const SSH_ALGOS: &[&str] = &["ssh-dss", "ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519"];

pub(crate) const CIPHERS: &[&str] = &[
    "arcfour256",
    "arcfour128",
    "3des-cbc",
    "blowfish-cbc",
    "cast128-cbc",
    "aes128-cbc",
    "rijndael-cbc@lysator.liu.se",
];

pub(crate) const KEX: &[&str] = &[
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group14-sha1",
];

pub(crate) const MACS: &[&str] = &[
    "hmac-md5",
    "hmac-md5-96",
    "hmac-sha1-96",
    "umac-64@openssh.com",
];

pub(crate) const TLS_ROWS: &[&str] = &[
    "RC4-SHA\tRSA\tRSA\tSHA1\tRC4(128)\tMEDIUM",
    "RC4-MD5\tRSA\tRSA\tMD5\tRC4(128)\tMEDIUM",
    "DES-CBC3-SHA\tRSA\tRSA\tSHA1\t3DES(168)\tMEDIUM",
    "ECDHE-RSA-DES-CBC3-SHA\tECDH\tRSA\tSHA1\t3DES(168)\tMEDIUM",
    "EXP-RC4-MD5\tRSA(512)\tRSA\tMD5\tRC4(40)\tLOW",
];

pub(crate) const TLS_VERSIONS: &[&str] = &["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"];

pub(crate) const WIN_FILES: &[&str] = &[
    "ntoskrnl.exe",
    "win32k.sys",
    "localspl.dll",
    "srv2.sys",
    "mshtml.dll",
    "schannel.dll",
    "tcpip.sys",
];

pub(crate) const REG_KEYS: &[&str] = &[
    "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\UBR",
    "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.0\\Server\\Enabled",
    "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Printers\\PointAndPrint\\NoWarningNoElevationOnInstall",
    "HKLM\\SYSTEM\\CurrentControlSet\\Services\\LanmanServer\\Parameters\\SMB1",
];

pub(crate) const HTTP_SERVERS: &[&str] = &[
    "Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips PHP/5.4.16",
    "Microsoft-IIS/8.5",
    "nginx/1.14.0 (Ubuntu)",
    "Apache-Coyote/1.1",
    "lighttpd/1.4.35",
];

pub(crate) const ICMP_ROWS: &[&str] = &[
    "Echo (type=0 code=0)\tEcho Request\tEcho Reply",
    "Unreachable (type=3 code=3)\tUDP Port 1043\tPort Unreachable",
    "Time Stamp (type=14 code=0)\tTime Stamp Request\t21:38:26 GMT",
    "Unreachable (type=3 code=2)\tIP with High Protocol\tProtocol Unreachable",
];

pub(crate) const CVSS2_VECTORS: &[&str] = &[
    "AV:N/AC:L/Au:N/C:C/I:C/A:C",
    "AV:N/AC:M/Au:N/C:P/I:P/A:P",
    "AV:N/AC:L/Au:N/C:P/I:N/A:N",
    "AV:L/AC:L/Au:N/C:C/I:C/A:C",
    "AV:N/AC:H/Au:N/C:N/I:P/A:N",
];

pub(crate) const CVSS2_TEMPORAL: &[&str] = &[
    "E:U/RL:OF/RC:C",
    "E:POC/RL:OF/RC:C",
    "E:F/RL:W/RC:UC",
    "E:H/RL:U/RC:C",
];

pub(crate) const CVSS3_VECTORS: &[&str] = &[
    "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:H/A:H",
    "AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
    "AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
    "AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
];

pub(crate) const CVSS3_TEMPORAL: &[&str] = &[
    "E:U/RL:O/RC:C",
    "E:P/RL:O/RC:C",
    "E:F/RL:W/RC:R",
    "E:H/RL:U/RC:C",
];

pub(crate) const VENDOR_SITES: &[&str] = &[
    "https://msrc.microsoft.com/update-guide/vulnerability/",
    "https://access.redhat.com/errata/",
    "https://ubuntu.com/security/notices/",
    "https://www.openssl.org/news/secadv/",
    "https://tools.cisco.com/security/center/content/CiscoSecurityAdvisory/",
];
