import pytest
import yaml

from vitssl.config import apply_overrides, build_config, config_to_dict, load_config, save_config
from vitssl.config.load import builtin_configs
from vitssl.errors import ConfigError


def err(overrides, path=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    msg = str(e.value)
    assert "\n" not in msg, "config errors are one line"
    return msg


def test_defaults_are_valid_and_roundtrip(tmp_path):
    cfg = load_config()
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)


@pytest.mark.parametrize("name", builtin_configs())
def test_builtin_configs_load(name):
    cfg = load_config(name)
    assert cfg.data.image_size % cfg.model.patch_size == 0


def test_required_builtin_configs_exist():
    assert {"sit_cifar10", "gmml_cifar10", "sit_224", "quickstart", "randsac_cifar10", "randsac_224"} <= \
        set(builtin_configs())
    assert load_config("gmml_cifar10").method.name == "gmml"
    assert load_config("sit_224").model.patch_size == 16
    ablations = {"pixel_raster", "patch_raster", "patch_random", "square_m2", "square_m4", "square_16to4", "blob_k7",
                 "blob_11to5", "blob_7to3", "vanilla_decoder", "square_192", "blob_192"}
    assert {f"randsac/{a}" for a in ablations} <= set(builtin_configs())
    assert load_config("configs/randsac/patch_raster.yaml").method.order == "raster"
    m = load_config("randsac/square_192")
    assert (m.data.image_size, m.method.square_size, m.method.partition_size, m.model.arch) == \
        (192, 3, 6, "vit_small")


def test_base_files_merge_under_and_cycles_are_errors(tmp_path):
    (tmp_path / "parent.yaml").write_text("method: {name: randsac, blobs: 9}\nmodel: {patch_size: 4}\n"
                                           "train: {epochs: 7, batch_size: 64}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain: {epochs: 3}\n")
    cfg = load_config(tmp_path / "child.yaml", ["method.order=raster"])
    assert (cfg.method.blobs, cfg.method.order, cfg.train.epochs, cfg.train.batch_size) == (9, "raster", 3, 64)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    assert "includes itself" in err([], tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: [a.yaml]\n")
    assert "'base'" in err([], tmp_path / "c.yaml")


def test_method_defaults_for_shared_sections_yield_to_the_user():
    sit, rs = load_config(), load_config(None, ["method.name=randsac", "model.patch_size=4"])
    assert sit.augment.jitter_p == 0.8 and rs.augment.jitter_p == 0.0  # RandSAC: minimal augmentation
    assert rs.optim.betas == (0.9, 0.95) and rs.model.pos_embed == "sincos"
    assert load_config(None, ["method.name=randsac", "model.patch_size=4", "augment.jitter_p=0.5"]).augment.jitter_p == 0.5


def test_unknown_key_names_key_and_suggests():
    msg = err(["train.epoch=3"])
    assert "'train.epoch'" in msg and "did you mean 'train.epochs'" in msg


def test_unknown_section():
    assert "unknown config key 'trian'" in err(["trian.epochs=3"])


def test_wrong_type():
    assert "'train.epochs' must be an integer" in err(["train.epochs=ten"])
    assert "'train.compile' must be true/false" in err(["train.compile=3"])
    assert "'augment.crop_scale' must be a list of 2 values" in err(["augment.crop_scale=[0.1]"])


def test_impossible_values():
    assert "'method.max_frac'" in err(["method.max_frac=1.5"])
    assert "'train.batch_size'" in err(["train.batch_size=0"])
    assert "'data.image_size' (30) must be a multiple of model.patch_size (4)" in err(
        ["data.image_size=30", "model.patch_size=4"])
    assert "'model.embed_dim'" in err(["model.embed_dim=100", "model.num_heads=3"])
    assert "'method.recon_blocks'" in err(["method.recon_blocks=[13]"])


def test_bad_method_name_lists_choices():
    msg = err(["method.name=simclr"])
    assert "gmml" in msg and "sit" in msg


def test_method_defaults_follow_name():
    gmml = load_config(None, ["method.name=gmml"]).method
    assert gmml.contrastive is False and gmml.max_frac == 0.75
    assert gmml.block_indices(12) == [5, 7, 9, 11]
    assert gmml.block_indices(4) == [1, 3]  # the defaults that exist in a shallower encoder
    assert load_config(None, ["method.name=sit"]).method.block_indices(12) == [11]


def test_string_override_keeps_text_and_null():
    cfg = load_config(None, ["data.root=yes", "output_dir=123", "train.max_steps=null", "data.limit=50"])
    assert cfg.data.root == "yes" and cfg.output_dir == "123"
    assert cfg.train.max_steps is None and cfg.data.limit == 50


def test_bad_override_syntax():
    assert "section.key=value" in err(["train.epochs"])
    assert "'seed' must be an integer" in err(["seed.x=1"])
    with pytest.raises(ConfigError, match="'train.epochs' is a value, not a section"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    assert "not valid YAML" in err([], bad)
    bad.write_text("- a\n- b\n")
    assert "must hold a mapping" in err([], bad)
    assert "does not exist" in err([], tmp_path / "nope.yaml")


def test_apply_overrides_does_not_mutate():
    data = {"train": {"epochs": 1}}
    out = apply_overrides(data, ["train.epochs=5", "optim.betas=[0.9, 0.95]"])
    assert data == {"train": {"epochs": 1}}
    cfg = build_config(out)
    assert cfg.train.epochs == 5 and cfg.optim.betas == (0.9, 0.95)


def test_saved_config_is_plain_yaml(tmp_path):
    cfg = load_config("sit_cifar10")
    save_config(cfg, tmp_path / "c.yaml")
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert data["method"]["name"] == "sit" and data["augment"]["crop_scale"] == [0.2, 1.0]


def test_switching_method_on_the_command_line_starts_from_its_defaults(capsys):
    """`vitssl pretrain method.name=mae` on the default (SiT) config: SiT's keys are not MAE's."""
    cfg = load_config("quickstart", ["method.name=mae", "method.mask_ratio=0.6"])
    assert cfg.method.name == "mae" and cfg.method.mask_ratio == 0.6
    assert "method.name=mae replaces the config's method section (method sit: alpha" in capsys.readouterr().err
    assert load_config("quickstart", ["method.name=sit"]).method.alpha == 5.0  # same method: the file's keys stay
    with pytest.raises(ConfigError, match="method.name' must be one of"):
        load_config("quickstart", ["method.name=maе"])  # a look-alike letter
