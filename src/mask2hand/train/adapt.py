"""Adapting a network to a user's unlabelled masks: the run behind `mask2hand adapt`.

An adaptation run is a training run (mask2hand.train.loop: resumable, logged, time-budgeted)
whose recipe mixes two kinds of batches (mask2hand.train.mixture):

- the user's masks, already prepared as the network's inputs (`write_user_masks` of
  mask2hand.train.adapt_data: cut and resampled as `predict` cuts them, with their
  intrinsics), split into a training share and a held-out share; they carry no 3-D labels and
  are trained on with the self-supervised objective (mask2hand.losses.self_supervised) against
  a teacher, and, where the user gave them, with 2-D keypoints as weak labels (its keypoint
  term);
- labelled synthetic masks (natural views, forearms, silhouette noise), trained on with the
  recipe's supervised loss, so that what the silhouette cannot see stays anchored;
- optionally, pseudo-labels (`write_pseudo_labels` of adapt_data): the starting network's
  answers for some of the user's training masks, fitted to them by test-time fitting
  (mask2hand.fit), those whose fitted IoU reaches a threshold kept as labels; trained on with
  the supervised loss, they distil the fit into the network.

The teacher is the starting network ("start", frozen) or an exponential moving average of the
student ("ema", mean teacher); either way it is saved in every checkpoint, so a resumed run
goes on with the same teacher. Validation is the objective and the IoU on the held-out masks:
measurable without labels.
"""

from __future__ import annotations

import torch

from mask2hand.data.dataset import HandBatch
from mask2hand.errors import Mask2HandError
from mask2hand.losses.self_supervised import adapt_objective
from mask2hand.train.loop import Trainer, add_into, term_sums
from mask2hand.train.val_metrics import batch_metric_sums

def teacher_network(config, resume: bool):
    """The teacher of an adaptation run: None for adapt.teacher "none"; else, frozen, the network
    a new run starts from (train.init_from), or for a resumed run a network of the recipe's
    settings, whose state the run's checkpoint restores."""
    from mask2hand.nn import Mask2HandNet
    from mask2hand.nn.checkpoint import load_network
    from mask2hand.train.config import network_config

    if config.adapt is None or config.adapt.teacher == "none":
        return None
    if resume:
        teacher = Mask2HandNet(network_config(config))
    else:
        teacher, _ = load_network(config.train.init_from, mano_path=config.network.get("hand_model_path"))
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval()


class AdaptTrainer(Trainer):
    """A Trainer for a recipe with an `adapt` section (see the module docstring).

    teacher: the network `teacher_network` gives for the recipe (None for adapt.teacher "none").
    """

    def __init__(self, config, out_dir, teacher, resume: bool = False, quiet: bool = False, verbose: bool = False):
        if config.adapt is None:
            raise Mask2HandError("an adaptation run needs a recipe with an 'adapt' section")
        if (teacher is None) != (config.adapt.teacher == "none"):
            raise Mask2HandError(f"adapt.teacher is '{config.adapt.teacher}': pass teacher_network(config, ...)")
        self.adapt = config.adapt
        self.teacher = teacher
        super().__init__(config, out_dir, resume=resume, quiet=quiet, verbose=verbose)
        if self.teacher is not None:
            self.teacher.to(self.dist.device)

    def _restore(self, payload: dict) -> None:
        super()._restore(payload)
        if self.teacher is not None:
            self.teacher.load_state_dict(payload["teacher"])

    def _checkpoint_state(self) -> dict:
        state = super()._checkpoint_state()
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def _adapt_terms(self, batch: HandBatch, network):
        output = network(batch.mask, batch.K)
        teacher_output = None
        if self.teacher is not None and self.adapt.weights.teacher > 0:
            with torch.no_grad():
                teacher_output = self.teacher(batch.mask, batch.K, exact_silhouette=True)
        return adapt_objective(self.net, output, self.adapt.weights, teacher_output, keypoints=batch.keypoints,
                               K=batch.K, world_keypoints=batch.world_keypoints), output

    def _loss_terms(self, batch: HandBatch):
        if batch.joints is not None:  # a labelled synthetic batch: the recipe's supervised loss
            return super()._loss_terms(batch)
        return self._adapt_terms(batch, self.model)[0]

    def _after_step(self) -> None:
        if self.teacher is not None and self.adapt.teacher == "ema":
            decay = self.adapt.ema_decay
            with torch.no_grad():
                for ours, theirs in zip(self.teacher.state_dict().values(), self.net.state_dict().values()):
                    if ours.is_floating_point():
                        ours.mul_(decay).add_(theirs.detach(), alpha=1 - decay)
                    else:
                        ours.copy_(theirs)

    def _validation_sums(self, batch: HandBatch) -> dict[str, float]:
        if batch.joints is not None:
            return super()._validation_sums(batch)
        terms, output = self._adapt_terms(batch, self.net)
        sums = term_sums(terms, len(batch))
        add_into(sums, batch_metric_sums(output, batch, self.net.hand.faces))
        return sums
