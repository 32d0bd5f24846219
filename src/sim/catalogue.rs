//! What the simulated cloud sells: regions, zones, instance types (with CPU,
//! memory, price and per-zone stock), images, and the network objects that
//! RunInstances may reference. Names and shapes follow real CVM values so the
//! examples in the README work unchanged against the real service.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Zone {
    pub zone: &'static str,
    pub zone_id: &'static str,
    pub name_en: &'static str,
    pub name_zh: &'static str,
    pub available: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stock {
    Sell,
    SoldOut,
}

#[derive(Debug, Clone)]
pub struct InstanceType {
    pub name: &'static str,
    pub family: &'static str,
    pub cpu: i64,
    pub memory: i64,
    /// Yuan per hour, postpaid.
    pub hourly_price: f64,
    /// Zones (of any region) that offer it, with stock.
    pub zones: &'static [(&'static str, Stock)],
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: &'static str,
    pub name: &'static str,
    pub os_name: &'static str,
    pub platform: &'static str,
    pub image_type: &'static str,
    pub size_gb: i64,
    /// A broken image: instances launched from it end in LAUNCH_FAILED.
    pub launch_fails: bool,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: &'static str,
    pub vpc_id: &'static str,
    pub zone: &'static str,
    /// First three octets of the /24 the simulator hands addresses out of.
    pub prefix: &'static str,
}

/// A placement group (`ps-…`): at most `capacity` instances of one account.
#[derive(Debug, Clone)]
pub struct PlacementGroup {
    pub id: &'static str,
    /// `HOST`, `SW` or `RACK`.
    pub kind: &'static str,
    pub capacity: usize,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub region: &'static str,
    pub zones: Vec<Zone>,
    pub vpcs: Vec<&'static str>,
    pub subnets: Vec<Subnet>,
    pub security_groups: Vec<&'static str>,
    pub key_ids: Vec<&'static str>,
    pub placement_groups: Vec<PlacementGroup>,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub regions: HashMap<&'static str, Region>,
    /// Project ids of every account (0 is the default project).
    pub projects: Vec<i64>,
    pub types: Vec<InstanceType>,
    pub images: Vec<Image>,
}

/// Every zone of the three simulated regions, for brevity in the type table.
const ALL_SELL: &[(&str, Stock)] = &[
    ("ap-guangzhou-3", Stock::Sell),
    ("ap-guangzhou-4", Stock::Sell),
    ("ap-guangzhou-6", Stock::Sell),
    ("ap-shanghai-2", Stock::Sell),
    ("ap-shanghai-4", Stock::Sell),
    ("ap-shanghai-5", Stock::Sell),
    ("ap-beijing-5", Stock::Sell),
    ("ap-beijing-6", Stock::Sell),
    ("ap-beijing-7", Stock::Sell),
];

impl Default for Catalogue {
    fn default() -> Self {
        let zone = |zone, zone_id, name_en, name_zh| Zone {
            zone,
            zone_id,
            name_en,
            name_zh,
            available: true,
        };
        let group = |id, kind, capacity| PlacementGroup { id, kind, capacity };
        let regions = [
            Region {
                region: "ap-guangzhou",
                zones: vec![
                    zone("ap-guangzhou-3", "100003", "Guangzhou Zone 3", "广州三区"),
                    zone("ap-guangzhou-4", "100004", "Guangzhou Zone 4", "广州四区"),
                    zone("ap-guangzhou-6", "100006", "Guangzhou Zone 6", "广州六区"),
                    Zone {
                        available: false,
                        ..zone("ap-guangzhou-2", "100002", "Guangzhou Zone 2", "广州二区")
                    },
                ],
                // A second VPC, so a subnet can belong to another VPC than the
                // one asked for (InvalidParameterValue.VpcIdSubnetIdNotMatch).
                vpcs: vec!["vpc-gz000001", "vpc-gz000002"],
                subnets: vec![
                    Subnet {
                        id: "subnet-gz000003",
                        vpc_id: "vpc-gz000001",
                        zone: "ap-guangzhou-3",
                        prefix: "172.16.3",
                    },
                    Subnet {
                        id: "subnet-gz000004",
                        vpc_id: "vpc-gz000001",
                        zone: "ap-guangzhou-4",
                        prefix: "172.16.4",
                    },
                    Subnet {
                        id: "subnet-gz000006",
                        vpc_id: "vpc-gz000001",
                        zone: "ap-guangzhou-6",
                        prefix: "172.16.6",
                    },
                    Subnet {
                        id: "subnet-gz200003",
                        vpc_id: "vpc-gz000002",
                        zone: "ap-guangzhou-3",
                        prefix: "10.2.3",
                    },
                ],
                security_groups: vec!["sg-gz000001", "sg-gz000002", "sg-gz000003"],
                key_ids: vec!["skey-gz000001", "skey-gz000002", "skey-gz000003"],
                // A small group, so its quota can be reached in a test.
                placement_groups: vec![
                    group("ps-gz000001", "HOST", 50),
                    group("ps-gz000002", "RACK", 2),
                ],
            },
            Region {
                region: "ap-shanghai",
                zones: vec![
                    zone("ap-shanghai-2", "200002", "Shanghai Zone 2", "上海二区"),
                    zone("ap-shanghai-4", "200004", "Shanghai Zone 4", "上海四区"),
                    zone("ap-shanghai-5", "200005", "Shanghai Zone 5", "上海五区"),
                ],
                vpcs: vec!["vpc-sh000001"],
                subnets: vec![Subnet {
                    id: "subnet-sh000002",
                    vpc_id: "vpc-sh000001",
                    zone: "ap-shanghai-2",
                    prefix: "10.0.2",
                }],
                security_groups: vec!["sg-sh000001", "sg-sh000002"],
                key_ids: vec!["skey-sh000001", "skey-sh000002"],
                placement_groups: vec![group("ps-sh000001", "HOST", 50)],
            },
            Region {
                region: "ap-beijing",
                zones: vec![
                    zone("ap-beijing-5", "800005", "Beijing Zone 5", "北京五区"),
                    zone("ap-beijing-6", "800006", "Beijing Zone 6", "北京六区"),
                    zone("ap-beijing-7", "800007", "Beijing Zone 7", "北京七区"),
                ],
                vpcs: vec!["vpc-bj000001"],
                subnets: vec![Subnet {
                    id: "subnet-bj000005",
                    vpc_id: "vpc-bj000001",
                    zone: "ap-beijing-5",
                    prefix: "10.1.5",
                }],
                security_groups: vec!["sg-bj000001"],
                key_ids: vec!["skey-bj000001", "skey-bj000002"],
                placement_groups: vec![group("ps-bj000001", "HOST", 50)],
            },
        ]
        .into_iter()
        .map(|r| (r.region, r))
        .collect();

        let t = |name, family, cpu, memory, hourly_price, zones| InstanceType {
            name,
            family,
            cpu,
            memory,
            hourly_price,
            zones,
        };
        let types = vec![
            t("S5.SMALL1", "S5", 1, 1, 0.09, ALL_SELL),
            t("S5.SMALL2", "S5", 1, 2, 0.13, ALL_SELL),
            t("S5.SMALL4", "S5", 1, 4, 0.20, ALL_SELL),
            t("S5.MEDIUM2", "S5", 2, 2, 0.18, ALL_SELL),
            t("S5.MEDIUM4", "S5", 2, 4, 0.25, ALL_SELL),
            t("S5.MEDIUM8", "S5", 2, 8, 0.39, ALL_SELL),
            t("S5.LARGE8", "S5", 4, 8, 0.50, ALL_SELL),
            t("S5.LARGE16", "S5", 4, 16, 0.78, ALL_SELL),
            t("S5.2XLARGE16", "S5", 8, 16, 1.00, ALL_SELL),
            t("S5.2XLARGE32", "S5", 8, 32, 1.56, ALL_SELL),
            t("S5.4XLARGE32", "S5", 16, 32, 2.00, ALL_SELL),
            t(
                "SA2.MEDIUM4",
                "SA2",
                2,
                4,
                0.21,
                &[
                    ("ap-guangzhou-3", Stock::Sell),
                    ("ap-guangzhou-4", Stock::Sell),
                    ("ap-shanghai-2", Stock::Sell),
                    ("ap-beijing-5", Stock::Sell),
                ],
            ),
            t(
                "SA2.LARGE8",
                "SA2",
                4,
                8,
                0.42,
                &[
                    ("ap-guangzhou-3", Stock::Sell),
                    ("ap-guangzhou-4", Stock::Sell),
                    ("ap-shanghai-2", Stock::Sell),
                    ("ap-beijing-5", Stock::Sell),
                ],
            ),
            // Sold out everywhere but one zone: ResourceInsufficient.SpecifiedInstanceType.
            t(
                "S6.LARGE16",
                "S6",
                4,
                16,
                0.80,
                &[
                    ("ap-guangzhou-3", Stock::SoldOut),
                    ("ap-guangzhou-4", Stock::SoldOut),
                    ("ap-guangzhou-6", Stock::Sell),
                ],
            ),
            // Offered only in Beijing: ResourceUnavailable.InstanceType elsewhere.
            t(
                "GN7.2XLARGE32",
                "GN7",
                8,
                32,
                8.68,
                &[("ap-beijing-7", Stock::Sell)],
            ),
        ];

        let img = |id, name, os_name, platform| Image {
            id,
            name,
            os_name,
            platform,
            image_type: "PUBLIC_IMAGE",
            size_gb: 20,
            launch_fails: false,
        };
        let images = vec![
            img(
                "img-487zeit5",
                "TencentOS Server 3.1 (TK4)",
                "TencentOS Server 3.1 (TK4)",
                "TencentOS",
            ),
            img(
                "img-pi0ii46r",
                "Ubuntu Server 22.04 LTS 64bit",
                "Ubuntu Server 22.04 LTS 64bit",
                "Ubuntu",
            ),
            img(
                "img-9qrfy1xt",
                "Ubuntu Server 24.04 LTS 64bit",
                "Ubuntu Server 24.04 LTS 64bit",
                "Ubuntu",
            ),
            img(
                "img-l8og963d",
                "CentOS 7.9 64bit",
                "CentOS 7.9 64bit",
                "CentOS",
            ),
            img(
                "img-eb30mz89",
                "Debian 12.0 64bit",
                "Debian 12.0 64bit",
                "Debian",
            ),
            Image {
                image_type: "PRIVATE_IMAGE",
                launch_fails: true,
                ..img(
                    "img-brokenz1",
                    "broken-custom-image",
                    "CentOS 7.9 64bit",
                    "CentOS",
                )
            },
        ];
        Self {
            regions,
            projects: vec![0, 1000001, 1000002, 1000003],
            types,
            images,
        }
    }
}

impl Catalogue {
    pub fn region(&self, region: &str) -> Option<&Region> {
        self.regions.get(region)
    }
    pub fn instance_type(&self, name: &str) -> Option<&InstanceType> {
        self.types.iter().find(|t| t.name == name)
    }
    pub fn image(&self, id: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.id == id)
    }
}

impl Region {
    pub fn zone(&self, zone: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.zone == zone)
    }
    pub fn placement_group(&self, id: &str) -> Option<&PlacementGroup> {
        self.placement_groups.iter().find(|g| g.id == id)
    }
    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }
    /// The subnet `DEFAULT`/`DEFAULT` resolves to in a zone.
    pub fn default_subnet(&self, zone: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.zone == zone)
            .or(self.subnets.first())
    }
}

impl InstanceType {
    /// A GPU family (`GN…`).
    pub fn is_gpu(&self) -> bool {
        self.family.starts_with("GN")
    }

    /// Whether an instance of this type may be changed to `other`: not
    /// across GPU and non-GPU families (UnsupportedChangeInstanceFamily),
    /// and not to itself.
    pub fn can_change_to(&self, other: &InstanceType) -> bool {
        self.name != other.name && self.is_gpu() == other.is_gpu()
    }

    pub fn stock_in(&self, zone: &str) -> Option<Stock> {
        self.zones.iter().find(|(z, _)| *z == zone).map(|(_, s)| *s)
    }
}
