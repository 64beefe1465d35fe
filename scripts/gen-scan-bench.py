# Writes the daemon's own matching-benchmark workload, seeded (the same bytes every run): N one-line
# EventBridge events of the kinds scanbridge routes, shaped as ../shared/samples (ECR Image Scan with
# basic scanning's counts (zero counts left out), Inspector2 Scan (repository ARN, zeros and TOTAL),
# Inspector2 Finding, ECR Image Action), with varied repositories, tags, counts, CVEs and packages,
# and two sets of realistic scan rules (scan_100, scan_10k).
# Usage: python3 scripts/gen-scan-bench.py N OUTDIR   (called by scripts/bench-match)
import json, random, sys

N = int(sys.argv[1])
out = sys.argv[2]
rnd = random.Random(18)
TEAMS = ["payments", "web", "data", "ml", "platform", "infra", "tools", "search", "auth", "billing",
         "checkout", "ledger", "risk", "growth", "mobile", "edge", "observability", "identity", "media", "ops"]
SERVICES = ["api", "worker", "frontend", "ingest", "scheduler", "gateway", "batch", "cron", "proxy", "db-migrate",
            "exporter", "sidecar", "admin", "consumer", "indexer"]
REPOS = [f"{t}/{s}" for t in TEAMS for s in SERVICES]
rnd.shuffle(REPOS)
REPO_W = [1.0 / (i + 1) ** 0.8 for i in range(len(REPOS))]
REGIONS = ["us-east-1", "us-east-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
ACCOUNTS = ["123456789012", "210987654321", "555566667777"]
SEVS = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]
PACKAGES = ["libssl3", "openssl", "glibc", "zlib1g", "curl", "libxml2", "busybox", "musl", "log4j-core", "jackson-databind",
            "spring-core", "netty-codec", "golang.org/x/net", "github.com/gin-gonic/gin", "lodash", "axios", "express",
            "urllib3", "requests", "pyyaml", "numpy", "pillow", "sqlite3", "bash", "perl-base", "tar", "gnupg", "libcurl4"]
CVES = [f"CVE-{y}-{n}" for y in (2021, 2022, 2023, 2024, 2025, 2026) for n in range(10001, 10341)]
CVE_W = [1.0 / (i + 1) ** 0.7 for i in range(len(CVES))]

def hexs(k):
    return "".join(rnd.choice("0123456789abcdef") for _ in range(k))

def tags():
    r = rnd.random()
    if r < 0.35:
        t = [f"v{rnd.randint(1, 4)}.{rnd.randint(0, 30)}.{rnd.randint(0, 9)}"]
        if rnd.random() < 0.5:
            t.append("latest")
        return t
    if r < 0.6:
        return [f"main-{hexs(7)}"]
    if r < 0.8:
        return [f"release-2026.{rnd.randint(1, 12):02d}"]
    if r < 0.95:
        return [f"pr-{rnd.randint(100, 9999)}"]
    return []

def counts(basic):
    c = {}
    c["CRITICAL"] = rnd.choice([0] * 8 + [1, 1, 2, 3, 5])
    c["HIGH"] = rnd.choice([0, 0, 0, 1, 2, 3, 4, 5, 7, 9, 12, 20])
    c["MEDIUM"] = rnd.randint(0, 40)
    c["LOW"] = rnd.randint(0, 25)
    if basic:
        c["INFORMATIONAL"] = rnd.randint(0, 6)
        c["UNDEFINED"] = rnd.choice([0, 0, 0, 1, 2])
        return {k: v for k, v in c.items() if v > 0}
    c.pop("LOW")
    c["TOTAL"] = sum(c.values()) + rnd.randint(0, 9)
    return c

def envelope(i, dt, source, region, account, resources, detail, t):
    return {"version": "0", "id": f"{rnd.getrandbits(32):08x}-{i:04x}-4{hexs(3)}-8{hexs(3)}-{hexs(12)}",
            "detail-type": dt, "source": source, "account": account,
            "time": f"2026-11-{1 + t // 86400 % 28:02d}T{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}Z",
            "region": region, "resources": resources, "detail": detail}

with open(f"{out}/scan-events.jsonl", "w") as f:
    for i in range(N):
        repo = rnd.choices(REPOS, REPO_W)[0]
        region, account = rnd.choice(REGIONS), rnd.choice(ACCOUNTS)
        arn = f"arn:aws:ecr:{region}:{account}:repository/{repo}"
        digest = "sha256:" + hexs(64)
        t = i * 37
        r = rnd.random()
        if r < 0.45:
            failed = rnd.random() < 0.05
            d = {"scan-status": "FAILED" if failed else "COMPLETE", "repository-name": repo}
            if not failed:
                c = counts(True)
                if c:
                    d["finding-severity-counts"] = c
            d["image-digest"] = digest
            d["image-tags"] = tags()
            ev = envelope(i, "ECR Image Scan", "aws.ecr", region, account, [arn], d, t)
        elif r < 0.55:
            d = {"scan-status": rnd.choice(["INITIAL_SCAN_COMPLETE"] * 9 + ["SCAN_ELIGIBILITY_EXPIRED"]),
                 "repository-name": arn, "finding-severity-counts": counts(False),
                 "image-digest": digest, "image-tags": tags(), "version": "1.0"}
            ev = envelope(i, "Inspector2 Scan", "aws.inspector2", region, account, [arn], d, t)
        elif r < 0.9:
            sev = rnd.choices(["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED"], [3, 10, 20, 12, 4, 1])[0]
            cve = rnd.choices(CVES, CVE_W)[0]
            pkg = rnd.choice(PACKAGES)
            ver = f"{rnd.randint(0, 9)}.{rnd.randint(0, 20)}.{rnd.randint(0, 30)}"
            fix = rnd.choices(["YES", "NO", "PARTIAL"], [6, 3, 1])[0]
            score = round(rnd.uniform(1.0, 10.0), 1)
            pkgs = [{"arch": "AMD64", "epoch": 0, "fixedInVersion": (ver + "-1") if fix != "NO" else "NotAvailable",
                     "name": pkg, "packageManager": rnd.choice(["OS", "JAR", "GOMOD", "NPM", "PYTHONPKG"]),
                     "release": "1", "version": ver}]
            if rnd.random() < 0.2:
                pkgs.append(dict(pkgs[0], name=rnd.choice(PACKAGES)))
            d = {"awsAccountId": account,
                 "description": f"A flaw in {pkg} allows a remote attacker to cause a denial of service or worse.",
                 "exploitAvailable": rnd.choice(["YES", "NO", "NO", "NO"]),
                 "findingArn": f"arn:aws:inspector2:{region}:{account}:finding/{hexs(32)}",
                 "firstObservedAt": "Fri Nov 20 13:06:58.102 UTC 2026", "fixAvailable": fix,
                 "inspectorScore": score, "lastObservedAt": "Fri Nov 20 13:06:58.102 UTC 2026",
                 "packageVulnerabilityDetails": {
                     "cvss": [{"baseScore": score, "scoringVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                               "source": "NVD", "version": "3.1"}],
                     "referenceUrls": [f"https://www.cve.org/CVERecord?id={cve}"], "relatedVulnerabilities": [],
                     "source": "NVD", "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{cve}",
                     "vendorSeverity": sev.lower(), "vulnerabilityId": cve, "vulnerablePackages": pkgs},
                 "remediation": {"recommendation": {"text": f"Upgrade {pkg} to {ver}-1"}},
                 "resources": [{"details": {"awsEcrContainerImage": {
                     "architecture": "amd64", "imageHash": digest, "imageTags": tags(),
                     "platform": rnd.choice(["DEBIAN_12", "ALPINE_3_19", "UBUNTU_22_04", "AMAZON_LINUX_2023"]),
                     "pushedAt": "Fri Nov 20 12:59:01.000 UTC 2026", "registry": account, "repositoryName": repo}},
                     "id": f"{arn}/{digest}", "partition": "aws", "region": region, "type": "AWS_ECR_CONTAINER_IMAGE"}],
                 "severity": sev, "status": rnd.choices(["ACTIVE", "SUPPRESSED", "CLOSED"], [8, 1, 1])[0],
                 "title": f"{cve} - {pkg}", "type": "PACKAGE_VULNERABILITY", "updatedAt": "Fri Nov 20 13:06:58.102 UTC 2026"}
            ev = envelope(i, "Inspector2 Finding", "aws.inspector2", region, account, [f"{arn}/{digest}"], d, t)
        else:
            d = {"result": rnd.choice(["SUCCESS"] * 19 + ["FAILURE"]), "repository-name": repo,
                 "image-digest": digest, "action-type": rnd.choice(["PUSH"] * 9 + ["DELETE"])}
            tg = tags()
            if tg:
                d["image-tag"] = tg[0]
            ev = envelope(i, "ECR Image Action", "aws.ecr", region, account, [], d, t)
        f.write(json.dumps(ev, separators=(",", ":")) + "\n")

def rule(k):
    repo = rnd.choices(REPOS, REPO_W)[0]
    team = repo.split("/")[0]
    fam = rnd.choices(range(9), [25, 14, 5, 18, 12, 9, 5, 7, 5])[0]
    if fam == 0:
        return {"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"],
                "detail": {"repository-name": [repo], "finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}
    if fam == 1:
        return {"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"],
                "detail": {"repository-name": [{"prefix": team + "/"}],
                           "finding-severity-counts": {"HIGH": [{"numeric": [">=", rnd.choice([3, 5, 10])]}]}}}
    if fam == 2:
        d = {"scan-status": ["FAILED"]}
        if rnd.random() < 0.7:
            d["repository-name"] = [repo]
        return {"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"], "detail": d}
    if fam == 3:
        return {"source": ["aws.inspector2"], "detail-type": ["Inspector2 Finding"],
                "detail": {"severity": rnd.choice([["CRITICAL"], ["CRITICAL", "HIGH"]]), "fixAvailable": ["YES"],
                           "status": ["ACTIVE"],
                           "resources": {"details": {"awsEcrContainerImage": {"repositoryName": [repo]}}}}}
    if fam == 4:
        return {"source": ["aws.inspector2"], "detail-type": ["Inspector2 Finding"],
                "detail": {"packageVulnerabilityDetails": {"vulnerabilityId": rnd.sample(CVES, rnd.choice([1, 1, 3]))}}}
    if fam == 5:
        return {"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"],
                "detail": {"repository-name": [{"prefix": team + "/"}],
                           "image-tags": [{"prefix": rnd.choice(["release-", "v"])}],
                           "finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}
    if fam == 6:
        return {"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"],
                "detail": {"repository-name": [repo], "scan-status": ["COMPLETE"],
                           "finding-severity-counts": {"CRITICAL": [{"exists": False}], "HIGH": [{"exists": False}]}}}
    if fam == 7:
        return {"source": ["aws.inspector2"], "detail-type": ["Inspector2 Scan"],
                "detail": {"repository-name": [{"suffix": "/" + repo}],
                           "finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}
    return {"source": ["aws.inspector2"], "detail-type": ["Inspector2 Finding"],
            "detail": {"inspectorScore": [{"numeric": [">=", rnd.choice([7, 8.5, 9, 9.8])]}],
                       "exploitAvailable": ["YES"],
                       "resources": {"details": {"awsEcrContainerImage": {"repositoryName": [{"prefix": team + "/"}]}}}}}

for name, n in (("scan_100", 100), ("scan_10k", 10000)):
    with open(f"{out}/{name}.rules", "w") as f:
        for k in range(n):
            f.write(f"r{k}\t{json.dumps(rule(k), separators=(',', ':'))}\n")
