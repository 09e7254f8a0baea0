//! How Helm stores a chart in an OCI registry: the media types of the chart's config and content
//! layer, and the tag a chart version is pushed under. The tool and its tests both use these, so a
//! test registry holds exactly what `helm push` would have put there.

/// The media type of a Helm chart's config blob (its Chart.yaml as JSON), as `helm push` writes it
/// (Helm's pkg/registry `ConfigMediaType`).
pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";

/// The media type of a Helm chart's content layer, the gzipped tar of the chart directory (Helm's
/// pkg/registry `ChartLayerMediaType`). The lock records a chart layer's media type only when it is
/// not this one, and Flux's `OCIRepository.spec.layerSelector` selects this one by default.
pub const HELM_CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// The media type of chart layers pushed by Helm before 3.8 and by some other tools
/// (`application/tar+gzip`); still accepted as a chart layer.
pub const LEGACY_CHART_MEDIA_TYPE: &str = "application/tar+gzip";

/// The OCI tag a chart version is pushed under: `+` (not allowed in an OCI tag) becomes `_`, as
/// Helm's registry client does on push and pull (pkg/registry, "OCI does not support the plus sign").
/// `1.2.3+build.4` is tagged `1.2.3_build.4`; a version without build metadata is its own tag.
pub fn tag_for_version(version: &str) -> String {
    version.replace('+', "_")
}

/// The chart version an OCI tag stands for: the inverse of [`tag_for_version`] (`_` becomes `+`).
/// Whether the result is a version Helm accepts is for the caller to check.
pub fn version_for_tag(tag: &str) -> String {
    tag.replace('_', "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_metadata_round_trips_through_the_tag() {
        assert_eq!(tag_for_version("1.2.3+build.4"), "1.2.3_build.4");
        assert_eq!(version_for_tag("1.2.3_build.4"), "1.2.3+build.4");
        assert_eq!(tag_for_version("0.27.0"), "0.27.0");
    }
}
